package secgroup

import (
	"sort"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/model"
)

// boundPort is a Neutron port bound to an OpenFlow port of the switch
// being computed, with its network's key.
type boundPort struct {
	port   *model.Port
	ofport uint32
	key    uint32 // the network's key (pipeline.RegNetwork)
}

// localPorts returns the Neutron ports bound to in.Switch (by the shared
// binding table, package binding), sorted by port id. It is the app's
// only view of bindings.
func localPorts(in app.Input) []boundPort {
	if in.Model == nil || in.Switch == nil {
		return nil
	}
	t := in.Binding()
	v := t.Switch(in.Switch)
	if v.Chassis == nil {
		return nil // a fabric switch: no security groups there
	}
	var out []boundPort
	for _, p := range v.Ports {
		if !v.Local(p) || p.OFPort == 0 {
			continue
		}
		n := t.Networks[p.Port.NetworkID]
		if n == nil {
			continue
		}
		out = append(out, boundPort{port: p.Port, ofport: p.OFPort, key: n.Key})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port.ID < out[j].port.ID })
	return out
}
