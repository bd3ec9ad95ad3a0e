package nat

import (
	"encoding/binary"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
)

// NewSwitchHandler makes the external gateway resolver of one switch.
func (a *App) NewSwitchHandler(dpid uint64) app.SwitchHandler {
	return &handler{dpid: dpid, learned: map[string]flow.MAC{}, pending: map[string][][]byte{}}
}

// maxPending bounds the egress packets held per external network while
// its gateway's MAC is being resolved (like a kernel's ARP queue).
const maxPending = 16

// handler learns, per external network, its gateway's MAC (from the
// ARP frames the classifier punts) and installs GatewayFlow; floating IP
// egress punted before that makes it ARP for the gateway, or, when the
// MAC is known already (the dynamic flow idled out, or the switch lost
// it), reinstall the flow and send the packet on.
type handler struct {
	dpid    uint64
	learned map[string]flow.MAC // by external network id
	// pending are egress packets punted before the gateway's MAC was
	// known, sent on when it is (at most maxPending per network).
	pending map[string][][]byte
}

// forward is the packet-out of an egress packet to the gateway.
func forward(e *Ext, mac flow.MAC, data []byte) app.PacketOut {
	return app.PacketOut{BufferID: app.NoBuffer, InPort: flow.PortController,
		Actions: append([]flow.Action{flow.SetField{F: flow.EthDst, Value: uint64(mac)}}, e.toUplink()...), Data: data}
}

func (h *handler) FlowRemoved(uint64, flow.Match) {}

// PacketIn handles the nat_punt punts.
func (h *handler) PacketIn(pi *app.PacketIn, out *app.Out) {
	st, _ := pi.State.(State)
	if st == nil || len(pi.Data) < 14 {
		return
	}
	switch binary.BigEndian.Uint16(pi.Data[12:14]) {
	case 0x0806: // from the uplink: the gateway's ARP
		e := st[pi.Cookie]
		sha, spa, ok := parseARP(pi.Data)
		if e == nil || pi.InPort != e.Uplink || !ok || spa != e.Gateway || sha == 0 || sha>>40&1 != 0 {
			return
		}
		// Adding the flow again when the MAC is known is harmless
		// (same match and priority: replaced, counters kept).
		h.learned[e.NetworkID] = sha
		out.Flows = append(out.Flows, app.FlowOut{Flow: GatewayFlow(e, sha), BufferID: app.NoBuffer})
		for _, data := range h.pending[e.NetworkID] {
			out.PacketOuts = append(out.PacketOuts, forward(e, sha, data))
		}
		delete(h.pending, e.NetworkID)
	case 0x0800: // floating IP egress before the gateway's MAC is known
		e := st[pi.Cookie]
		if e == nil {
			return
		}
		if mac, ok := h.learned[e.NetworkID]; ok {
			out.Flows = append(out.Flows, app.FlowOut{Flow: GatewayFlow(e, mac), BufferID: app.NoBuffer})
			out.PacketOuts = append(out.PacketOuts, forward(e, mac, append([]byte(nil), pi.Data...)),
				arpRequest(e)) // revalidate: the answer replaces the flow
			return
		}
		if q := h.pending[e.NetworkID]; len(q) < maxPending {
			h.pending[e.NetworkID] = append(q, append([]byte(nil), pi.Data...))
		}
		out.PacketOuts = append(out.PacketOuts, arpRequest(e))
	}
}

// arpRequest asks for e's gateway out of its uplink.
func arpRequest(e *Ext) app.PacketOut {
	return app.PacketOut{BufferID: app.NoBuffer, InPort: flow.PortController,
		Actions: e.toUplink(), Data: flow.ARPRequest(e.SrcMAC, e.SrcIP, e.Gateway)}
}

// parseARP reads an untagged Ethernet/IPv4 ARP frame's sender.
func parseARP(b []byte) (sha flow.MAC, spa flow.IPv4, ok bool) {
	if len(b) < 42 || binary.BigEndian.Uint16(b[14:16]) != 1 || binary.BigEndian.Uint16(b[16:18]) != 0x0800 || b[18] != 6 || b[19] != 4 {
		return 0, 0, false
	}
	for _, x := range b[22:28] {
		sha = sha<<8 | flow.MAC(x)
	}
	return sha, flow.IPv4(binary.BigEndian.Uint32(b[28:32])), true
}

var _ app.PacketInApp = (*App)(nil)
