package secgroup

import (
	"sort"
	"strings"
	"time"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/node/names"
	"github.com/nimbus-sdn/nimbus/topology"
)

// boundPort is a Neutron port bound to an OpenFlow port of the switch
// being computed, with its network's key.
type boundPort struct {
	port   *model.Port
	ofport uint32
	key    uint32 // the network's key (pipeline.RegNetwork)
}

// localPorts returns the Neutron ports bound to in.Switch, sorted by port
// id. It is the app's only view of bindings.
//
// TODO(shared bindings): this applies the isolation app's binding rules
// (iface-id, then tap name, then binding:profile port_name; one
// interface, one Neutron port, the strongest and then oldest claim wins;
// never an infrastructure port) until the shared binding table lands.
func localPorts(in app.Input) []boundPort {
	if in.Model == nil || in.Switch == nil {
		return nil
	}
	type at struct {
		dpid uint64
		p    topology.Port
	}
	chassis := in.Model.Chassis()
	var self *model.Chassis
	byName, byIface := map[string]at{}, map[string]at{}
	sort.Slice(chassis, func(i, j int) bool { return chassis[i].Name < chassis[j].Name })
	for _, c := range chassis {
		dp, err := c.DatapathID()
		if err != nil {
			continue
		}
		sw := chassisSwitch(c, dp, in.Topology)
		if dp == in.Switch.DPID {
			self, sw = c, in.Switch
		}
		if sw == nil {
			continue
		}
		for _, p := range sw.Ports {
			if infraPort(c, p) {
				continue
			}
			if _, dup := byName[p.Name]; !dup {
				byName[p.Name] = at{sw.DPID, p}
			}
			if id := c.Interfaces[p.Name]; id != "" {
				if _, dup := byIface[id]; !dup {
					byIface[id] = at{sw.DPID, p}
				}
			}
		}
	}
	if self == nil {
		return nil
	}
	keys := networkKeys(in.Model)
	type claim struct {
		port *model.Port
		how  int
		at   at
	}
	best := map[uint32]claim{} // local ofport -> strongest claim
	ports := in.Model.Ports()
	sort.Slice(ports, func(i, j int) bool { return ports[i].ID < ports[j].ID })
	for _, p := range ports {
		if _, ok := keys[p.NetworkID]; !ok {
			continue
		}
		var c claim
		if b, ok := byIface[p.ID]; ok {
			c = claim{p, 0, b}
		} else if b, ok := byName[names.VMPortName(p.ID)]; ok {
			c = claim{p, 1, b}
		} else if pn, _ := p.Profile["port_name"].(string); pn != "" {
			b, ok := byName[pn]
			if !ok {
				continue
			}
			c = claim{p, 2, b}
		} else {
			continue
		}
		if c.at.dpid != in.Switch.DPID {
			continue
		}
		old, ok := best[c.at.p.No]
		if !ok || stronger(c.how, c.port, old.how, old.port) {
			best[c.at.p.No] = c
		}
	}
	out := make([]boundPort, 0, len(best))
	for no, c := range best {
		out = append(out, boundPort{port: c.port, ofport: no, key: keys[c.port.NetworkID]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port.ID < out[j].port.ID })
	return out
}

func stronger(how int, p *model.Port, oldHow int, old *model.Port) bool {
	if how != oldHow {
		return how < oldHow
	}
	ta, _ := time.Parse(time.RFC3339, p.CreatedAt)
	tb, _ := time.Parse(time.RFC3339, old.CreatedAt)
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return p.ID < old.ID
}

// chassisSwitch is a peer chassis's port list: what its agent published,
// else the live topology.
func chassisSwitch(c *model.Chassis, dpid uint64, topo *topology.Snapshot) *topology.Switch {
	if c.Ports == nil {
		if topo != nil {
			return topo.Switches[dpid]
		}
		return nil
	}
	sw := &topology.Switch{DPID: dpid, Ports: make(map[uint32]topology.Port, len(c.Ports))}
	for name, no := range c.Ports {
		sw.Ports[no] = topology.Port{No: no, Name: name, Up: true}
	}
	return sw
}

// infraPort: LOCAL, tunnels, bridge-mapping patches and uplink bridges
// never carry a Neutron port.
func infraPort(c *model.Chassis, p topology.Port) bool {
	if p.No == flow.PortLocal || p.No >= flow.PortMax {
		return true
	}
	for _, pre := range []string{names.TunnelPrefix, names.PhysPrefix, names.IntPrefix} {
		if strings.HasPrefix(p.Name, pre) {
			return true
		}
	}
	for _, br := range c.Mappings {
		if p.Name == br {
			return true
		}
	}
	return false
}

// networkKeys maps network ids to their key in pipeline.RegNetwork (the
// GRE key, or 1<<23 | VLAN id), for the networks the isolation app
// carries.
func networkKeys(m *model.Snapshot) map[string]uint32 {
	out := map[string]uint32{}
	for _, n := range m.Networks() {
		switch n.NetworkType {
		case model.NetGRE:
			if n.SegmentationID > 0 && n.SegmentationID < 1<<23 {
				out[n.ID] = uint32(n.SegmentationID)
			}
		case model.NetVLAN:
			if n.SegmentationID > 0 && n.SegmentationID < 4095 && n.PhysicalNetwork != "" {
				out[n.ID] = 1<<23 | uint32(n.SegmentationID)
			}
		}
	}
	return out
}
