package snat

import (
	"encoding/binary"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// Egress is one SNAT egress (a router, one of its tenant networks) on a
// chassis, as the resolver needs it: the match of its NATed packets in
// snat, its uplink and the next hop to send them to.
type Egress struct {
	Cookie  uint64
	Match   flow.Match
	Uplink  uint32
	VLAN    uint16 // 0: untagged (flat)
	NextHop flow.IPv4
	MAC     flow.MAC // this chassis's source MAC for the router (ChassisMAC)
}

// State is the handler's state on one switch: the egresses by cookie.
type State map[uint64]*Egress

// Probe is the ARP probe for e's next hop from e's MAC (sender address
// 0.0.0.0, so no neighbour cache learns from it; the next hop answers
// to the probe's sender MAC).
func (e *Egress) Probe() []byte {
	return flow.Tagged(flow.ARPRequest(e.MAC, 0, e.NextHop), e.VLAN)
}

// GatewayFlow is the resolver's dynamic flow once e's next hop MAC is
// known: NATed packets to that MAC, out of the uplink. It idles out
// after 10 minutes without traffic (the next packet is punted, and it
// comes back).
func GatewayFlow(e *Egress, mac flow.MAC) flow.Flow {
	acts := []flow.Action{flow.SetField{F: flow.EthDst, Value: uint64(mac)}}
	if e.VLAN != 0 {
		acts = append(acts, flow.PushVLAN{EthType: flow.EthTypeVLAN}, flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | uint64(e.VLAN)})
	}
	return flow.Flow{Table: pipeline.SNAT.ID(), Priority: pipeline.PriorityNormal + 25, Cookie: e.Cookie | pipeline.CookieDynamic,
		IdleTimeout: 600, Match: e.Match, Actions: append(acts, flow.Output{Port: e.Uplink})}
}

// maxPending bounds the packets held per egress while its next hop is
// being resolved (like a kernel's ARP queue).
const maxPending = 16

// NewSwitchHandler makes the next-hop resolver of one switch.
func (a *App) NewSwitchHandler(dpid uint64) app.SwitchHandler {
	return &handler{learned: map[learnKey]flow.MAC{}, pending: map[uint64][][]byte{}}
}

// handler learns each egress's next hop MAC from the answers to the
// chassis's ARP probes (punted by the classifier) and installs
// GatewayFlow; egress punted before that makes it probe again and holds
// the packet, or, when the MAC is known already (the dynamic flow idled
// out), reinstalls the flow and sends the packet on. Only egress and ARP
// are ever punted: return traffic never reaches it.
type handler struct {
	learned map[learnKey]flow.MAC
	pending map[uint64][][]byte // by egress cookie
}

// learnKey names a next hop: its uplink, VLAN (0: flat) and address.
type learnKey struct {
	uplink  uint32
	vlan    uint16
	nextHop flow.IPv4
}

func (h *handler) FlowRemoved(uint64, flow.Match) {}

func forward(e *Egress, mac flow.MAC, data []byte) app.PacketOut {
	f := GatewayFlow(e, mac)
	return app.PacketOut{BufferID: app.NoBuffer, InPort: flow.PortController, Actions: f.Actions, Data: data}
}

// PacketIn handles the snat_punt punts.
func (h *handler) PacketIn(pi *app.PacketIn, out *app.Out) {
	st, _ := pi.State.(State)
	if st == nil || len(pi.Data) < 14 {
		return
	}
	b := pi.Data
	o := 12
	var tag uint16 // the frame's VLAN, 0 untagged
	if binary.BigEndian.Uint16(b[12:14]) == 0x8100 {
		if len(b) < 18 {
			return
		}
		tag, o = binary.BigEndian.Uint16(b[14:16])&0xfff, 16
	}
	switch binary.BigEndian.Uint16(b[o : o+2]) {
	case 0x0806: // the next hop's answer to a probe
		a := b[o+2:]
		if len(a) < 28 || binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != 0x0800 || a[4] != 6 || a[5] != 4 ||
			binary.BigEndian.Uint16(a[6:8]) != 2 {
			return
		}
		sha, tha := mac(a[8:14]), mac(a[18:24])
		spa := flow.IPv4(binary.BigEndian.Uint32(a[14:18]))
		if sha == 0 || sha>>40&1 != 0 {
			return
		}
		for _, e := range st {
			// The answer must come on the egress's own network: its
			// VLAN (or untagged for flat). Two VLAN external networks
			// share the uplink and may use the same next hop address.
			if e.Uplink != pi.InPort || e.NextHop != spa || e.MAC != tha || uint16(e.VLAN) != tag {
				continue
			}
			h.learned[learnKey{e.Uplink, uint16(e.VLAN), spa}] = sha
			out.Flows = append(out.Flows, app.FlowOut{Flow: GatewayFlow(e, sha), BufferID: app.NoBuffer})
			for _, data := range h.pending[e.Cookie] {
				out.PacketOuts = append(out.PacketOuts, forward(e, sha, data))
			}
			delete(h.pending, e.Cookie)
		}
	case 0x0800: // NATed egress before the next hop's MAC is known here
		e := st[pi.Cookie]
		if e == nil {
			return
		}
		if m, ok := h.learned[learnKey{e.Uplink, uint16(e.VLAN), e.NextHop}]; ok {
			out.Flows = append(out.Flows, app.FlowOut{Flow: GatewayFlow(e, m), BufferID: app.NoBuffer})
			out.PacketOuts = append(out.PacketOuts, forward(e, m, append([]byte(nil), b...)))
			return
		}
		if q := h.pending[e.Cookie]; len(q) < maxPending {
			h.pending[e.Cookie] = append(q, append([]byte(nil), b...))
		}
		out.PacketOuts = append(out.PacketOuts, app.PacketOut{BufferID: app.NoBuffer, InPort: flow.PortController,
			Actions: []flow.Action{flow.Output{Port: e.Uplink}}, Data: e.Probe()})
	}
}

func mac(b []byte) flow.MAC {
	var m flow.MAC
	for _, x := range b {
		m = m<<8 | flow.MAC(x)
	}
	return m
}

var _ app.PacketInApp = (*App)(nil)
