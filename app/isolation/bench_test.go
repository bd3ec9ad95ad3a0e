package isolation

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/binding"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/model/names"
	"github.com/nimbus-sdn/nimbus/topology"
)

// BenchmarkDesired: 50 chassis, 200 GRE networks, 4000 ports (80 per
// chassis), computed for one chassis, the binding table included (as
// every switch's computation did before the table was shared).
func BenchmarkDesired(b *testing.B) {
	in := benchInput()
	a := New(Config{})
	d, _ := a.Desired(in)
	b.ReportMetric(float64(len(d.Flows)), "flows")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Desired(in)
	}
}

// BenchmarkDesiredSharedBindings: the same switch with the binding table
// computed once for the snapshot (as the switch manager does: this is
// each switch's cost in a refresh of all switches).
func BenchmarkDesiredSharedBindings(b *testing.B) {
	in := benchInput()
	in.Bindings = binding.Compute(in.Model, in.Topology)
	a := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Desired(in)
	}
}

// BenchmarkBindingCompute: the binding table of that snapshot, once per
// snapshot for all 50 switches.
func BenchmarkBindingCompute(b *testing.B) {
	in := benchInput()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binding.Compute(in.Model, in.Topology)
	}
}

func benchInput() app.Input {
	const nch, nnet, nport = 50, 200, 4000
	recs := map[model.Kind]map[string]model.Record{model.KindChassis: {}, model.KindNetwork: {}, model.KindSubnet: {}, model.KindPort: {}}
	topo := &topology.Snapshot{Switches: map[uint64]*topology.Switch{}}
	for c := 0; c < nch; c++ {
		name := fmt.Sprintf("hv%03d", c)
		recs[model.KindChassis][name] = &model.Chassis{Name: name, TunnelIP: fmt.Sprintf("172.16.0.%d", c+1), DPID: fmt.Sprintf("%016x", c+1)}
		ports := map[uint32]topology.Port{}
		for p := 0; p < nch; p++ {
			if p != c {
				ports[uint32(1000+p)] = topology.Port{No: uint32(1000 + p), Name: names.TunnelPortName(fmt.Sprintf("hv%03d", p))}
			}
		}
		topo.Switches[uint64(c+1)] = &topology.Switch{DPID: uint64(c + 1), Ports: ports}
	}
	for n := 0; n < nnet; n++ {
		id := fmt.Sprintf("net-%03d", n)
		recs[model.KindNetwork][id] = &model.Network{Base: model.Base{ID: id}, NetworkType: model.NetGRE, SegmentationID: 1000 + n, MTU: 1458}
		recs[model.KindSubnet]["s"+id] = &model.Subnet{Base: model.Base{ID: "s" + id}, NetworkID: id, IPVersion: 4, CIDR: "10.0.0.0/16", GatewayIP: "10.0.0.1", EnableDHCP: true}
	}
	for p := 0; p < nport; p++ {
		id := fmt.Sprintf("%08x-0000-4000-8000-000000000000", p)
		c := p % nch
		recs[model.KindPort][id] = &model.Port{Base: model.Base{ID: id}, NetworkID: fmt.Sprintf("net-%03d", p%nnet), PortSecurity: true,
			MACAddress: fmt.Sprintf("fa:16:3e:00:%02x:%02x", p>>8, p&0xff),
			FixedIPs:   []model.FixedIP{{SubnetID: fmt.Sprintf("snet-%03d", p%nnet), IPAddress: fmt.Sprintf("10.0.%d.%d", p>>8, p&0xff+2)}}}
		topo.Switches[uint64(c+1)].Ports[uint32(p/nch+1)] = topology.Port{No: uint32(p/nch + 1), Name: names.VMPortName(id)}
	}
	return app.Input{Model: model.NewSnapshot(1, recs), Topology: topo, Switch: topo.Switches[1]}
}
