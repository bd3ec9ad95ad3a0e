package nat

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
)

// Two VLAN external networks on one physical network share the
// chassis's uplink, with the same gateway address: each learns its own
// gateway's MAC from the ARP punted by its own flow (its cookie), and
// neither's answer is taken for the other's. Keyed by uplink, the second
// network overwrote the first, whose gateway was then never learned.
func TestSharedUplinkVLANNetworks(t *testing.T) {
	const up = 9
	gw, _ := flow.ParseIPv4("198.51.100.1")
	src, _ := flow.ParseIPv4("198.51.100.50")
	a := &Ext{NetworkID: "ext-a", Key: 1, Uplink: up, VLAN: 300, Gateway: gw, SrcMAC: 0xfa163eff0050, SrcIP: src}
	b := &Ext{NetworkID: "ext-b", Key: 2, Uplink: up, VLAN: 301, Gateway: gw, SrcMAC: 0xfa163eff0051, SrcIP: src}
	st := State{a.Cookie(): a, b.Cookie(): b}
	h := New().NewSwitchHandler(1)
	macA, macB := flow.MAC(0x02000000000a), flow.MAC(0x02000000000b)
	for _, c := range []struct {
		e   *Ext
		mac flow.MAC
	}{{a, macA}, {b, macB}} {
		var out app.Out
		h.PacketIn(&app.PacketIn{DPID: 1, InPort: up, Cookie: c.e.Cookie(), Data: arpFrame(2, c.mac, "198.51.100.1", "198.51.100.50", c.e.SrcMAC), State: st}, &out)
		if len(out.Flows) != 1 {
			t.Fatalf("%s: flows %v, want its gateway flow", c.e.NetworkID, out.Flows)
		}
		got := out.Flows[0].Flow
		if got.Cookie != GatewayFlow(c.e, c.mac).Cookie || got.Actions[0] != (flow.SetField{F: flow.EthDst, Value: uint64(c.mac)}) {
			t.Errorf("%s: learned %v, want its own gateway MAC %v", c.e.NetworkID, got, c.mac)
		}
	}
	// An ARP on another port with a's cookie is not a's gateway.
	var out app.Out
	h.PacketIn(&app.PacketIn{DPID: 1, InPort: up + 1, Cookie: a.Cookie(), Data: arpFrame(2, macB, "198.51.100.1", "198.51.100.50", a.SrcMAC), State: st}, &out)
	if len(out.Flows) != 0 {
		t.Errorf("an ARP off the uplink taught %v", out.Flows)
	}
}
