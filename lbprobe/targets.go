// Package lbprobe runs LBaaS v1 health monitors on a hypervisor: the node
// agent of each chassis probes the pool members whose ports are on that
// chassis (PING, TCP, HTTP/HTTPS as a plain GET/HEAD), from a probe
// namespace that holds the VIP's address and MAC and is joined to br-int
// by a veth (names.LBProbePortName; app/lb steers the probes between it
// and the member's port). A member that fails max_retries probes in a row
// is written INACTIVE in etcd (its model record's status); two successes
// in a row write it ACTIVE again (riseAfter). app/lb reads the status from the snapshot. See
// app/lb/README.md, "Health monitors", for why the probes run there.
package lbprobe

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
)

// Monitor is what a probe does (from the pool's health monitor).
type Monitor struct {
	ID            string
	Type          string // PING, TCP, HTTP, HTTPS
	Delay         int    // seconds between probes
	Timeout       int    // seconds a probe may take
	MaxRetries    int    // consecutive failures before INACTIVE
	HTTPMethod    string
	URLPath       string
	ExpectedCodes string
}

// Target is one member to probe from this chassis.
type Target struct {
	MemberID string
	Addr     netip.Addr
	Port     int
	MAC      string // the member port's MAC (a permanent neighbour in the probe namespace)
	Monitor  Monitor
}

// Probe is one VIP's probe namespace on this chassis.
type Probe struct {
	VIPID string
	// Source is the probes' source address with the subnet's prefix
	// length: the VIP's, or for a DSR pool the VIP subnet's gateway_ip
	// (a DSR member holds the VIP itself and drops packets from it as
	// martians; app/lb/README.md, "Health monitors of DSR pools").
	Source  netip.Prefix
	DSR     bool
	VIPMAC  string
	Port    string // names.LBProbePortName(VIPID)
	IfaceID string // names.LBProbeIfaceID(VIPID)
	Targets []Target
}

// Plan is what this chassis probes, and the local members whose pool
// has no monitor (any INACTIVE left from a removed monitor goes back to
// ACTIVE).
type Plan struct {
	Probes    []Probe
	Unmonitor []string
}

// Targets computes the plan of chassis from a snapshot: every admin-up
// VIP whose pool has an admin-up health monitor (the first by id when
// there are several) and a member whose Neutron port (found by address
// on the VIP's subnet's network) is an interface of this chassis
// (ifaceIDs: interface name -> iface-id, as the agent publishes them).
func Targets(s *model.Snapshot, ifaceIDs map[string]string) Plan {
	var plan Plan
	local := map[string]bool{}
	for _, id := range ifaceIDs {
		local[id] = true
	}
	members := map[string][]*model.LBMember{}
	for _, r := range s.List(model.KindMember) {
		m := r.(*model.LBMember)
		members[m.PoolID] = append(members[m.PoolID], m)
	}
	for _, r := range s.List(model.KindVIP) {
		vip := r.(*model.LBVIP)
		pr, ok := s.Get(model.KindPool, vip.PoolID)
		if !ok {
			continue
		}
		pool := pr.(*model.LBPool)
		sr, ok := s.Get(model.KindSubnet, vip.SubnetID)
		if !ok {
			continue
		}
		sub := sr.(*model.Subnet)
		// Local member ports of the VIP's network, by address.
		byIP := map[netip.Addr]*model.Port{}
		for _, pr := range s.List(model.KindPort) {
			p := pr.(*model.Port)
			if p.NetworkID != sub.NetworkID || !local[p.ID] {
				continue
			}
			for _, f := range p.FixedIPs {
				if a, err := netip.ParseAddr(f.IPAddress); err == nil {
					byIP[a] = p
				}
			}
		}
		mon, ok := monitorOf(s, pool)
		// A DSR pool is probed from its subnet's gateway_ip; without one
		// it cannot be probed and counts as unmonitored.
		dsr := strings.Contains(pool.Description, binding.LBDSRTag)
		gw, gwErr := netip.ParseAddr(sub.GatewayIP)
		if dsr && (gwErr != nil || !gw.Is4()) {
			ok = false
		}
		if !ok || !vip.AdminStateUp || !pool.AdminStateUp {
			for _, m := range members[pool.ID] {
				if a, err := netip.ParseAddr(m.Address); err == nil && byIP[a] != nil {
					plan.Unmonitor = append(plan.Unmonitor, m.ID)
				}
			}
			continue
		}
		vipAddr, err := netip.ParseAddr(vip.Address)
		if err != nil {
			continue
		}
		cidr, err := netip.ParsePrefix(sub.CIDR)
		if err != nil {
			continue
		}
		vp, ok := s.Get(model.KindPort, vip.PortID)
		if !ok {
			continue
		}
		pb := Probe{VIPID: vip.ID, Source: netip.PrefixFrom(vipAddr, cidr.Bits()), VIPMAC: vp.(*model.Port).MACAddress,
			Port: names.LBProbePortName(vip.ID), IfaceID: names.LBProbeIfaceID(vip.ID)}
		if dsr {
			pb.Source, pb.DSR = netip.PrefixFrom(gw, cidr.Bits()), true
		}
		for _, m := range members[pool.ID] {
			a, err := netip.ParseAddr(m.Address)
			// Only the pool's own project's ports: a probe skips the
			// member's security groups (it comes from the member's own
			// chassis), so probing another project's port on a shared
			// network would scan it past them.
			if err != nil || byIP[a] == nil || byIP[a].ProjectID != pool.ProjectID || m.ProtocolPort <= 0 || m.ProtocolPort > 0xffff {
				continue
			}
			port := m.ProtocolPort
			if dsr {
				// A DSR member serves the VIP's port (its protocol_port
				// is not used): probed there, at its own address.
				port = vip.ProtocolPort
			}
			if port <= 0 || port > 0xffff {
				continue
			}
			pb.Targets = append(pb.Targets, Target{MemberID: m.ID, Addr: a, Port: port, MAC: byIP[a].MACAddress, Monitor: mon})
		}
		if len(pb.Targets) > 0 {
			sort.Slice(pb.Targets, func(i, j int) bool { return pb.Targets[i].MemberID < pb.Targets[j].MemberID })
			plan.Probes = append(plan.Probes, pb)
		}
	}
	sort.Slice(plan.Probes, func(i, j int) bool { return plan.Probes[i].VIPID < plan.Probes[j].VIPID })
	sort.Strings(plan.Unmonitor)
	return plan
}

// maxProbeSeconds caps a monitor's delay and timeout as the prober uses
// them (the API takes any 32-bit value, as Neutron does): a probe every
// hour at most, never a Duration that overflows.
const maxProbeSeconds = 3600

func monitorOf(s *model.Snapshot, pool *model.LBPool) (Monitor, bool) {
	ids := append([]string(nil), pool.HealthMonitorIDs...)
	sort.Strings(ids)
	for _, id := range ids {
		r, ok := s.Get(model.KindHealthMonitor, id)
		if !ok {
			continue
		}
		h := r.(*model.LBHealthMonitor)
		if !h.AdminStateUp {
			continue
		}
		m := Monitor{ID: h.ID, Type: strings.ToUpper(h.Type), Delay: min(max(h.Delay, 1), maxProbeSeconds), Timeout: min(max(h.Timeout, 1), maxProbeSeconds),
			MaxRetries: max(h.MaxRetries, 1), HTTPMethod: h.HTTPMethod, URLPath: h.URLPath, ExpectedCodes: h.ExpectedCodes}
		if m.HTTPMethod == "" {
			m.HTTPMethod = "GET"
		}
		if m.URLPath == "" {
			m.URLPath = "/"
		}
		if m.ExpectedCodes == "" {
			m.ExpectedCodes = "200"
		}
		return m, true
	}
	return Monitor{}, false
}

// CodeOK reports whether an HTTP status matches expected_codes as LBaaS
// v1 writes it: "200", a list "200,202", or a range "200-204".
func CodeOK(expected string, code int) bool {
	for _, part := range strings.Split(expected, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(strings.TrimSpace(lo))
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
				continue
			}
		}
		if code >= a && code <= b {
			return true
		}
	}
	return false
}
