package node

import (
	"context"
	"fmt"
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
// entries in ovs-appctl's dpctl/dump-conntrack format (zone 0: all).
type ConntrackOVS interface {
	DumpConntrack(ctx context.Context, zone uint16) (string, error)
}

// DumpConntrack runs ovs-appctl dpctl/dump-conntrack (zone=N unless 0).
func (v Vswitch) DumpConntrack(ctx context.Context, zone uint16) (string, error) {
	args := []string{"dpctl/dump-conntrack"}
	if zone != 0 {
		args = append(args, fmt.Sprintf("zone=%d", zone))
	}
	return v.exec(ctx, "ovs-appctl", args...)
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

// countVIPConns counts the ESTABLISHED TCP entries of dump whose
// original destination and zone are a VIP's, per VIP id.
func countVIPConns(dump string, vips map[vipKey]string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(dump, "\n") {
		e, ok := parseConntrack(line)
		if !ok || e.proto != "tcp" || e.state != "ESTABLISHED" || e.zone == 0 {
			continue
		}
		port, err := strconv.Atoi(e.orig["dport"])
		if err != nil {
			continue
		}
		if id, ok := vips[vipKey{e.zone, e.orig["dst"], port}]; ok {
			out[id]++
		}
	}
	return out
}

// ctEntry is one line of ovs-appctl dpctl/dump-conntrack:
// "tcp,orig=(src=..,dst=..,sport=..,dport=..),reply=(..),zone=Z,...,
// protoinfo=(state=ESTABLISHED)" (zone absent: 0).
type ctEntry struct {
	proto       string
	orig, reply map[string]string
	zone        uint16
	state       string
}

// parseConntrack reads one dump line; false when it is not an entry.
func parseConntrack(line string) (ctEntry, bool) {
	proto, rest, ok := strings.Cut(line, ",orig=(")
	if !ok {
		return ctEntry{}, false
	}
	e := ctEntry{proto: proto}
	tuple := func(s string) map[string]string {
		m := map[string]string{}
		for _, f := range strings.Split(s, ",") {
			if k, v, ok := strings.Cut(f, "="); ok {
				m[k] = v
			}
		}
		return m
	}
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
	counts := map[string]int{}
	if vips := vipKeys(snap); len(vips) > 0 {
		dump, err := o.DumpConntrack(ctx, 0)
		if err != nil {
			return fmt.Errorf("node: counting load balancer connections: %w", err)
		}
		counts = countVIPConns(dump, vips)
	}
	return w.PublishLBConns(ctx, a.cfg.Chassis, store.LBConns{Chassis: a.cfg.Chassis, VIPs: counts})
}
