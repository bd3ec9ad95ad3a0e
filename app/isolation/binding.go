package isolation

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/topology"
)

// Binding rules (what a Neutron port may be bound to, whoever asks):
//
//   - never to a switch's own ports: LOCAL (the bridge), a tunnel
//     (gre-*), a bridge-mapping patch (phy-*, int-*) or a bridge of the
//     chassis's mappings, whatever binding:profile port_name or
//     external_ids:iface-id say (infraPort);
//   - one OpenFlow port carries at most one Neutron port. When several
//     resolve to the same interface, the strongest claim keeps it: the
//     interface's own iface-id, then the tap name, then a binding:profile
//     port_name; between equal claims the older port (created_at, then
//     id). The others stay unbound and each is logged once as a binding
//     failure (settleBindings).

// bound is where a Neutron port is bound: a chassis and its OpenFlow port.
type bound struct {
	chassis string // "" on a fabric switch
	dpid    uint64
	port    topology.Port
}

// How a port's binding was found, strongest first.
const (
	claimIfaceID = iota // the interface's external_ids:iface-id names the port
	claimTapName        // the interface is the port's tap (tap + id[:11])
	claimProfile        // binding:profile port_name names the interface
)

var claimNames = [...]string{"iface-id", "tap name", "binding:profile port_name"}

// infraPort reports whether switch port p of chassis c (nil on a fabric
// switch) is one no Neutron port may be bound to.
func infraPort(c *model.Chassis, p topology.Port) bool {
	if p.No == flow.PortLocal || p.No >= flow.PortMax {
		return true
	}
	for _, pre := range []string{names.TunnelPrefix, names.PhysPrefix, names.IntPrefix} {
		if strings.HasPrefix(p.Name, pre) {
			return true
		}
	}
	if c != nil {
		for _, br := range c.Mappings {
			if p.Name == br {
				return true
			}
		}
	}
	return false
}

// claim is one Neutron port's claim on an interface.
type claim struct {
	port *model.Port
	how  int
	at   bound
}

func createdAt(p *model.Port) time.Time {
	t, _ := time.Parse(time.RFC3339, p.CreatedAt) // zero (oldest) if absent
	return t
}

// stronger orders two claims on the same interface.
func stronger(a, b claim) bool {
	if a.how != b.how {
		return a.how < b.how
	}
	ta, tb := createdAt(a.port), createdAt(b.port)
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return a.port.ID < b.port.ID
}

// settleBindings keeps, per interface, the strongest claim (see the
// binding rules above) and returns the winners by Neutron port id. Each
// losing claim is logged once (per pair of ports and interface) as a
// binding failure naming both port ids and the switch.
func (a *App) settleBindings(claims []claim) map[string]bound {
	type iface struct {
		dpid uint64
		no   uint32
	}
	best := map[iface]claim{}
	var lost []claim
	// Deterministic regardless of the model's iteration order.
	sort.Slice(claims, func(i, j int) bool { return claims[i].port.ID < claims[j].port.ID })
	for _, c := range claims {
		k := iface{c.at.dpid, c.at.port.No}
		old, ok := best[k]
		switch {
		case !ok:
			best[k] = c
		case stronger(c, old):
			best[k] = c
			lost = append(lost, old)
		default:
			lost = append(lost, c)
		}
	}
	out := make(map[string]bound, len(best))
	for _, c := range best {
		out[c.port.ID] = c.at
	}
	for _, l := range lost {
		w := best[iface{l.at.dpid, l.at.port.No}]
		key := fmt.Sprintf("%x/%d/%s/%s", l.at.dpid, l.at.port.No, l.port.ID, w.port.ID)
		if !a.firstFailure(key) {
			continue
		}
		slog.Error("isolation: binding failure: interface already bound to another port",
			"port", l.port.ID, "by", claimNames[l.how], "bound_port", w.port.ID, "bound_by", claimNames[w.how],
			"chassis", l.at.chassis, "dpid", fmt.Sprintf("%016x", l.at.dpid),
			"ofport", l.at.port.No, "interface", l.at.port.Name)
	}
	return out
}

// firstFailure reports whether a binding failure is new (the set is
// bounded: it is forgotten, and failures logged again, past 10,000).
func (a *App) firstFailure(key string) bool {
	a.failMu.Lock()
	defer a.failMu.Unlock()
	if a.failures[key] {
		return false
	}
	if a.failures == nil || len(a.failures) >= 10000 {
		a.failures = map[string]bool{}
	}
	a.failures[key] = true
	return true
}
