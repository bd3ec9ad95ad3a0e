package northbound

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

func ip4(s string) (uint32, bool) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	return binary.BigEndian.Uint32(b[:]), true
}

func ipString(u uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b).String()
}

// cidr4 is a parsed IPv4 subnet: first and last address.
type cidr4 struct {
	first, last uint32
	bits        int
}

func parseCIDR(s string) (cidr4, bool) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return cidr4{}, false
	}
	b := p.Masked().Addr().As4()
	first := binary.BigEndian.Uint32(b[:])
	size := uint64(1) << (32 - p.Bits())
	return cidr4{first: first, last: uint32(uint64(first) + size - 1), bits: p.Bits()}, true
}

func (c cidr4) contains(ip uint32) bool { return ip >= c.first && ip <= c.last }

// host reports whether ip is a usable host address (not the network or
// broadcast address of a subnet larger than /31).
func (c cidr4) host(ip uint32) bool {
	if !c.contains(ip) {
		return false
	}
	if c.bits >= 31 {
		return true
	}
	return ip != c.first && ip != c.last
}

func (c cidr4) overlaps(o cidr4) bool { return c.first <= o.last && o.first <= c.last }

type ipRange struct{ start, end uint32 }

// subnetPools returns a subnet's allocation pools as ranges.
func subnetPools(s *model.Subnet) []ipRange {
	var out []ipRange
	for _, p := range s.AllocationPools {
		a, ok1 := ip4(p.Start)
		b, ok2 := ip4(p.End)
		if ok1 && ok2 && a <= b {
			out = append(out, ipRange{a, b})
		}
	}
	return out
}

// defaultPools is every host address but the gateway.
func defaultPools(c cidr4, gw uint32, hasGW bool) []model.Pool {
	first, last := c.first+1, c.last-1
	if c.bits >= 31 {
		first, last = c.first, c.last
	}
	var out []model.Pool
	add := func(a, b uint32) {
		if a <= b && a >= first && b <= last {
			out = append(out, model.Pool{Start: ipString(a), End: ipString(b)})
		}
	}
	if hasGW && gw >= first && gw <= last {
		if gw > first {
			add(first, gw-1)
		}
		if gw < last {
			add(gw+1, last)
		}
	} else {
		add(first, last)
	}
	return out
}

// allocWindow is how many of the lowest free addresses a new port picks
// from at random (Neutron does the same): concurrent allocations on
// different replicas then rarely collide, and a collision only retries
// the transaction.
const allocWindow = 64

// allocateIP allocates a free address of subnet s to owner inside tx.
// The free list comes from a plain read (a hint); the claim itself is a
// tracked read plus write of the address's key, so two transactions can
// never both commit the same address. A hint that offers nothing free is
// read again from etcd before the subnet is called full.
func (h *handler) allocateIP(rc *reqCtx, tx *store.Tx, s *model.Subnet, owner string, taken map[string]bool) (string, error) {
	for _, fresh := range []bool{false, true} {
		cands, cached, err := h.ipamCandidates(rc, s, taken, fresh)
		if err != nil {
			return "", err
		}
		for _, u := range cands {
			ip := ipString(u)
			if tx.GetRaw(ipamKey(s.ID, ip)) == "" {
				tx.PutRaw(ipamKey(s.ID, ip), owner)
				h.ipam.markUsed(s.ID, u)
				return ip, nil
			}
			h.ipam.markUsed(s.ID, u)
		}
		if !cached {
			break
		}
	}
	return "", conflict("IpAddressGenerationFailure", "No more IP addresses available for subnet %s.", s.ID)
}

// ipamCandidates returns up to allocWindow of the lowest free addresses
// of s's pools, shuffled, from the cached hint (cached true) or from a
// fresh read of the subnet's allocations.
func (h *handler) ipamCandidates(rc *reqCtx, s *model.Subnet, taken map[string]bool, fresh bool) ([]uint32, bool, error) {
	extra := make(map[uint32]bool, len(taken))
	for ip := range taken {
		if u, ok := ip4(ip); ok {
			extra[u] = true
		}
	}
	if !fresh {
		if cands, ok := h.ipam.candidates(s, extra); ok {
			return cands, true, nil
		}
	}
	kvs, _, err := h.listRaw(rc, ipamPrefix(s.ID))
	if err != nil {
		return nil, false, err
	}
	used := make(map[uint32]bool, len(kvs))
	for _, kv := range kvs {
		if u, ok := ip4(kv.key[strings.LastIndex(kv.key, "/")+1:]); ok {
			used[u] = true
		}
	}
	cands := freeWindow(s, used, extra)
	h.ipam.store(s.ID, used) // used belongs to the cache from here on
	return cands, false, nil
}

// freeWindow is up to allocWindow of the lowest addresses of s's pools
// that are in neither used nor extra (nor the gateway), shuffled.
func freeWindow(s *model.Subnet, used, extra map[uint32]bool) []uint32 {
	gw, hasGW := ip4(s.GatewayIP)
	var cands []uint32
	pools := subnetPools(s)
	sort.Slice(pools, func(i, j int) bool { return pools[i].start < pools[j].start })
	for _, p := range pools {
		for ip := uint64(p.start); ip <= uint64(p.end) && len(cands) < allocWindow; ip++ {
			u := uint32(ip)
			if !used[u] && !extra[u] && !(hasGW && u == gw) {
				cands = append(cands, u)
			}
		}
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	return cands
}

// ipamHints keeps, per large subnet, the allocated addresses last read
// from etcd, so that a port create does not read every allocation of
// its subnet: that read grows with the subnet (a /16 with 9,600 ports
// took the create rate from 277 to 51 ports/s, docs/benchmarks.md).
// The hint is only a hint: every claim is checked in its transaction,
// an address this replica claims (or finds taken) is marked at once,
// the hint is read again after hintTTL (addresses freed meanwhile, here
// or on another replica, come back then), and a hint with nothing free
// is re-read before the subnet is called full. Subnets with fewer than
// hintMin allocations are read every time, as before.
type ipamHints struct {
	mu sync.Mutex
	m  map[string]*ipamHint
}

type ipamHint struct {
	used map[uint32]bool
	read time.Time
}

const (
	hintMin = 256
	hintTTL = time.Second
	// hintMax bounds the cache: past it, stale entries are dropped.
	hintMax = 1024
)

func (c *ipamHints) candidates(s *model.Subnet, extra map[uint32]bool) ([]uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[s.ID]
	if e == nil || time.Since(e.read) > hintTTL {
		return nil, false
	}
	return freeWindow(s, e.used, extra), true
}

func (c *ipamHints) store(subnet string, used map[uint32]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(used) < hintMin {
		delete(c.m, subnet)
		return
	}
	if c.m == nil {
		c.m = map[string]*ipamHint{}
	}
	if len(c.m) >= hintMax {
		for k, e := range c.m {
			if time.Since(e.read) > hintTTL {
				delete(c.m, k)
			}
		}
	}
	if len(c.m) < hintMax {
		c.m[subnet] = &ipamHint{used: used, read: time.Now()}
	}
}

func (c *ipamHints) markUsed(subnet string, u uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.m[subnet]; e != nil {
		e.used[u] = true
	}
}

// ipAllocated is Neutron's answer for an address already taken
// (recorded: port-create-ip-taken, fip-create-ip-taken).
func ipAllocated(ip, subnet string) *apiError {
	return conflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", ip, subnet)
}

// claimIP allocates a given address of subnet s to owner inside tx.
func claimIP(tx *store.Tx, s *model.Subnet, ip, owner string) (string, error) {
	u, ok := ip4(ip)
	if !ok {
		return "", invalidInput("fixed_ips", "'%s' is not a valid IPv4 address", ip)
	}
	c, _ := parseCIDR(s.CIDR)
	if !c.host(u) {
		return "", errf(400, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", ip)
	}
	ip = ipString(u)
	// The gateway address is an ordinary one: a port may take it while
	// no router interface does (recorded: port-create-gateway-ip), and a
	// router interface then finds it allocated (port-create-on-gw-used,
	// rtr-if-add-other-router). Only the network's owner or an admin may
	// name an address at all (policy.go).
	if cur := tx.GetRaw(ipamKey(s.ID, ip)); cur != "" && cur != owner {
		return "", ipAllocated(ip, s.ID)
	}
	tx.PutRaw(ipamKey(s.ID, ip), owner)
	return ip, nil
}
