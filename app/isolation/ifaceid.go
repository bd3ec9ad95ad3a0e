package isolation

import (
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/topology"
)

// ChassisIfaceIDs reads iface-ids from the chassis records: the node agent
// publishes the external_ids:iface-id of its br-int interfaces in
// model.Chassis.Interfaces (interface name -> Neutron port id), because an
// OpenFlow port description carries only the name. It is the default
// Config.IfaceIDs. Binding by name (tap + port id[:11], or the port's
// binding:profile port_name) still applies to ports it does not resolve.
type ChassisIfaceIDs struct{}

// IfaceID returns the iface-id of port p of chassis ch, "" if unknown.
func (ChassisIfaceIDs) IfaceID(ch *model.Chassis, p topology.Port) string {
	if ch == nil {
		return ""
	}
	return ch.Interfaces[p.Name]
}
