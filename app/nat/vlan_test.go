package nat

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// TestWalkVLANExternal: the external network is VLAN 300 on extnet
// instead of flat. Frames cross the uplink tagged 300: ARP for the
// floating IP is answered tagged, untagged frames are not taken, DNAT
// delivers to the VM untagged, egress (and the handler's ARP request and
// held packets, and the announcements) leave tagged.
func TestWalkVLANExternal(t *testing.T) {
	s := newScenario()
	x := s.recs[model.KindNetwork]["net-x"].(*model.Network)
	x.NetworkType, x.SegmentationID = model.NetVLAN, 300
	sw, d := chassis(t, s, "hv1")
	st := d.Handler.(State)
	tagged := func(b []byte) []byte { return flow.Tagged(b, 300) }
	t.Run("ARP for the floating IP, tagged 300: answered tagged", func(t *testing.T) {
		e := only(t, walk(t, sw, uplink, parse(t, tagged(arpFrame(1, inetMAC, "198.51.100.1", "198.51.100.50", 0)))))
		if e.Packet.ARPOp != 2 || e.Packet.ARPSha != fipMAC1 || len(e.Packet.VLANs) != 1 || e.Packet.VLANs[0].VID != 300 {
			t.Fatalf("answer %s", e.Packet)
		}
		if r := walk(t, sw, uplink, parse(t, arpFrame(1, inetMAC, "198.51.100.1", "198.51.100.50", 0))); len(r.Ports()) != 0 {
			t.Fatalf("untagged ARP answered: %s", r)
		}
	})
	t.Run("to the floating IP, tagged: DNAT to a1, untagged", func(t *testing.T) {
		p := parse(t, tagged(pingFrame(t, inetMAC, fipMAC1, "203.0.113.80", "198.51.100.50", 64)))
		e := only(t, walk(t, sw, uplink, p))
		if e.Port != 1 || e.Packet.IPv4Dst != mustIP("10.0.1.11") || len(e.Packet.VLANs) != 0 {
			t.Fatalf("DNAT: %s out %d", e.Packet, e.Port)
		}
	})
	h := New().NewSwitchHandler(1)
	out := ping(t, macA1, rA1, "10.0.1.11", "203.0.113.80", 64)
	t.Run("egress before learning: the handler's ARP request leaves tagged", func(t *testing.T) {
		e := only(t, walk(t, sw, 1, out))
		if !e.Punt() || len(e.Packet.VLANs) != 0 {
			t.Fatalf("%s (%s)", e, e.Packet)
		}
		var o app.Out
		h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, Cookie: e.Cookie, Data: append(make([]byte, 12), 8, 0, 1), State: st}, &o)
		if len(o.PacketOuts) != 1 || len(o.PacketOuts[0].Actions) != 3 || o.PacketOuts[0].Actions[1] != (flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 300}) {
			t.Fatalf("ARP request %+v", o.PacketOuts)
		}
	})
	t.Run("the gateway's tagged ARP is punted untagged; egress leaves tagged to it", func(t *testing.T) {
		e := only(t, walk(t, sw, uplink, parse(t, tagged(arpFrame(2, gwMAC, "198.51.100.1", "198.51.100.50", fipMAC1)))))
		if !e.Punt() || len(e.Packet.VLANs) != 0 {
			t.Fatalf("gateway ARP: %s (%s)", e, e.Packet)
		}
		var o app.Out
		h.PacketIn(&app.PacketIn{DPID: 1, InPort: uplink, Cookie: e.Cookie, Data: arpFrame(2, gwMAC, "198.51.100.1", "198.51.100.50", fipMAC1), State: st}, &o)
		if len(o.Flows) != 1 || len(o.PacketOuts) != 1 {
			t.Fatalf("handler: %+v", o)
		}
		if err := pipeline.Check(&o.Flows[0].Flow); err != nil {
			t.Fatal(err)
		}
		sw.Install(&o.Flows[0].Flow)
		e = only(t, walk(t, sw, 1, out))
		if e.Port != uplink || e.Packet.IPv4Src != mustIP("198.51.100.50") || e.Packet.EthDst != gwMAC || len(e.Packet.VLANs) != 1 || e.Packet.VLANs[0].VID != 300 {
			t.Fatalf("egress %s out %d", e.Packet, e.Port)
		}
	})
	t.Run("announcements are tagged", func(t *testing.T) {
		if len(d.Announce) != 2 {
			t.Fatalf("%d announcements", len(d.Announce))
		}
		for _, a := range d.Announce {
			if p := parse(t, a.Data); len(p.VLANs) != 1 || p.VLANs[0].VID != 300 || p.ARPSpa != mustIP("198.51.100.50") {
				t.Errorf("announcement %s", p)
			}
		}
	})
}
