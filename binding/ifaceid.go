package binding

import (
	"strings"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/topology"
)

// ovsLocal is OFPP_LOCAL in OpenFlow 1.0 numbering, which OVS's
// Interface.ofport column reports for the bridge's internal interface (no
// other port gets it: OVS numbers ports below 0xff00).
const ovsLocal = 0xfffe

// IfaceIDs tells which Neutron port id an OpenFlow port of a chassis
// carries, from OVS's Interface external_ids:iface-id.
type IfaceIDs interface {
	IfaceID(ch *model.Chassis, p topology.Port) string
}

// InfraPort reports whether switch port p of chassis c (nil on a fabric
// switch) is one no Neutron port may be bound to: LOCAL (OFPP_LOCAL, or
// 65534, the number OVS's Interface table and so a chassis record give
// the bridge's own interface), a reserved port, a tunnel, a
// bridge-mapping patch or a mapped bridge.
func InfraPort(c *model.Chassis, p topology.Port) bool {
	if p.No == flow.PortLocal || p.No == ovsLocal || p.No >= flow.PortMax {
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

// ChassisIfaceIDs reads iface-ids from the chassis records: the node agent
// publishes the external_ids:iface-id of its br-int interfaces in
// model.Chassis.Interfaces (interface name -> Neutron port id), because an
// OpenFlow port description carries only the name. It is the default
// Options.IfaceIDs. Binding by name (tap + port id[:11], or the port's
// binding:profile port_name) still applies to ports it does not resolve.
type ChassisIfaceIDs struct{}

// IfaceID returns the iface-id of port p of chassis ch, "" if unknown.
func (ChassisIfaceIDs) IfaceID(ch *model.Chassis, p topology.Port) string {
	if ch == nil {
		return ""
	}
	return ch.Interfaces[p.Name]
}

// ChassisSwitch is the port list bindings to another chassis come from:
// the ports its node agent published in its record (model.Chassis.Ports),
// so that a switch's desired state does not depend on which other switches
// happen to be connected to this replica (after a controller restart the
// peers come back in any order). Only a chassis whose agent does not
// publish its ports falls back to the live topology (its switch while
// connected, nil otherwise). A switch's own ports always come from its own
// port description (app.Input.Switch).
func ChassisSwitch(c *model.Chassis, dpid uint64, topo *topology.Snapshot) *topology.Switch {
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
