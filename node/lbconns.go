package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/store"
)

// Load balancer connections. A VIP's connections are committed in its
// network's lb zone (pipeline.ZoneLB) on the chassis that balanced them
// (the client's, or its floating IP's home), with the VIP as the
// original destination (NAT and DSR alike). Every LBConnInterval the
// agent counts this chassis's ESTABLISHED ones per VIP from one
// conntrack dump and publishes the counts under its lease
// (store.LBConns); the API adds them up over the chassis for a pool's
// active_connections.

// ConntrackOVS is what the count needs of OVS: the datapath's conntrack
// entries of one zone (0: every zone), handed over one dump line at a
// time in ovs-appctl's dpctl/dump-conntrack format.
type ConntrackOVS interface {
	ScanConntrack(ctx context.Context, zone uint16, fn func(line string)) error
}

// ScanConntrack runs ovs-appctl dpctl/dump-conntrack (zone=N unless 0)
// and calls fn for each line as it is read: the agent never holds the
// whole dump, which grows with the chassis's connections (hundreds of
// MB at Open vSwitch's default limit of 3 million entries), only one
// line (at most maxDumpLine bytes; a longer one is skipped).
func (v Vswitch) ScanConntrack(ctx context.Context, zone uint16, fn func(line string)) error {
	args := []string{"dpctl/dump-conntrack"}
	if zone != 0 {
		args = append(args, fmt.Sprintf("zone=%d", zone))
	}
	return v.command(ctx, func(r io.Reader) error { return eachLine(r, fn) }, "ovs-appctl", args...)
}

// maxDumpLine bounds one conntrack dump line (an entry is about 250
// bytes; a longer line is not one and is skipped).
const maxDumpLine = 4096

// eachLine calls fn for each line of r (without its newline), skipping
// lines longer than maxDumpLine; it holds one line at a time.
func eachLine(r io.Reader, fn func(line string)) error {
	br := bufio.NewReaderSize(r, maxDumpLine)
	skip := false
	for {
		b, err := br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			skip = true
			continue
		case skip:
			skip = false // the tail of a line too long
		case len(b) > 0:
			fn(strings.TrimSuffix(string(b), "\n"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
	}
}

// vipKey is a VIP's connections' original destination and zone.
type vipKey struct {
	zone uint16
	dst  string
	port int
}

// vipKeys maps each admin-up VIP of snap (with an address and a
// network Nimbus can key) to its id.
func vipKeys(snap *model.Snapshot) map[vipKey]string {
	out := map[vipKey]string{}
	for _, r := range snap.List(model.KindVIP) {
		v := r.(*model.LBVIP)
		sr, ok := snap.Get(model.KindSubnet, v.SubnetID)
		if !ok || v.Address == "" {
			continue
		}
		nr, ok := snap.Get(model.KindNetwork, sr.(*model.Subnet).NetworkID)
		if !ok {
			continue
		}
		key, ok := binding.NetworkKey(nr.(*model.Network))
		if !ok {
			continue
		}
		out[vipKey{pipeline.ZoneLB(key), v.Address, v.ProtocolPort}] = v.ID
	}
	return out
}

// vipConnCounter returns a dump line's counter and the counts it fills:
// the ESTABLISHED TCP entries whose original destination and zone are
// a VIP's, per VIP id.
func vipConnCounter(vips map[vipKey]string) (func(line string), map[string]int) {
	out := map[string]int{}
	return func(line string) {
		e, ok := parseConntrack(line)
		if !ok || e.proto != "tcp" || e.state != "ESTABLISHED" || e.zone == 0 {
			return
		}
		port, err := strconv.Atoi(e.orig.get("dport"))
		if err != nil {
			return
		}
		if id, ok := vips[vipKey{e.zone, e.orig.get("dst"), port}]; ok {
			out[id]++
		}
	}, out
}

// maxZoneDumps: a chassis with VIPs on more networks than this dumps
// every zone once instead of each lb zone on its own.
const maxZoneDumps = 8

// lbZones are the zones to dump for vips: each lb zone, or 0 (every
// zone, one dump) when there are more than maxZoneDumps of them.
func lbZones(vips map[vipKey]string) []uint16 {
	seen := map[uint16]bool{}
	var zones []uint16
	for k := range vips {
		if !seen[k.zone] {
			seen[k.zone] = true
			zones = append(zones, k.zone)
		}
	}
	if len(zones) > maxZoneDumps {
		return []uint16{0}
	}
	slices.Sort(zones)
	return zones
}

// ctEntry is one line of ovs-appctl dpctl/dump-conntrack:
// "tcp,orig=(src=..,dst=..,sport=..,dport=..),reply=(..),zone=Z,...,
// protoinfo=(state=ESTABLISHED)" (zone absent: 0).
type ctEntry struct {
	proto       string
	orig, reply tuple
	zone        uint16
	state       string
}

// tuple is a dump line's "src=..,dst=..,sport=..,dport=.." (read in
// place: a dump is read line by line every interval, and a map per
// tuple would allocate for every entry of the chassis).
type tuple string

// get is key's value in t ("" when absent).
func (t tuple) get(key string) string {
	for s := string(t); s != ""; {
		var f string
		f, s, _ = strings.Cut(s, ",")
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// parseConntrack reads one dump line; false when it is not an entry.
func parseConntrack(line string) (ctEntry, bool) {
	proto, rest, ok := strings.Cut(line, ",orig=(")
	if !ok {
		return ctEntry{}, false
	}
	e := ctEntry{proto: proto}
	orig, rest, ok := strings.Cut(rest, ")")
	if !ok {
		return ctEntry{}, false
	}
	e.orig = tuple(orig)
	if r, ok := strings.CutPrefix(rest, ",reply=("); ok {
		reply, after, ok := strings.Cut(r, ")")
		if !ok {
			return ctEntry{}, false
		}
		e.reply, rest = tuple(reply), after
	}
	if _, z, ok := strings.Cut(rest, ",zone="); ok {
		z, _, _ = strings.Cut(z, ",")
		n, err := strconv.ParseUint(z, 10, 16)
		if err != nil {
			return ctEntry{}, false
		}
		e.zone = uint16(n)
	}
	if _, st, ok := strings.Cut(rest, "state="); ok {
		e.state, _, _ = strings.Cut(st, ")")
	}
	return e, true
}

// syncLBConns counts and publishes this chassis's VIP connections.
func (a *Agent) syncLBConns(ctx context.Context, snap *model.Snapshot, w *store.StatusWriter) error {
	o, ok := a.cfg.OVS.(ConntrackOVS)
	if !ok || a.dpid == "" {
		return nil
	}
	vips := vipKeys(snap)
	count, counts := vipConnCounter(vips)
	for _, z := range lbZones(vips) {
		if err := o.ScanConntrack(ctx, z, count); err != nil {
			return fmt.Errorf("node: counting load balancer connections: %w", err)
		}
	}
	return w.PublishLBConns(ctx, a.cfg.Chassis, store.LBConns{Chassis: a.cfg.Chassis, VIPs: counts})
}
