package lb

import (
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// When a VIP has no healthy member, its new TCP connections are punted
// (through pipeline.MeterLBReject) to this handler, which answers each
// with a RST from the VIP, so the client fails at once instead of
// retrying its SYN into a black hole.

var _ app.PacketInApp = (*App)(nil)

// NewSwitchHandler makes the RST responder of one switch.
func (a *App) NewSwitchHandler(dpid uint64) app.SwitchHandler { return &handler{} }

type handler struct{}

func (*handler) FlowRemoved(uint64, flow.Match) {}

// State is what the handler needs on one switch (app.Desired.Handler):
// the outside clients' RSTs (fip.go, F3), by the punting flow's cookie.
type State map[uint64]Outside

// Outside is where the RST to an outside client of a VIP's floating IP
// goes: app/nat's floating IP egress on External, the external network.
type Outside struct {
	External uint32
}

// Actions send a RST from the floating IP through snat's floating IP
// egress, as app/nat's dnat flow sends a member's reply (network register
// = the external network, class VM, routed): there the external
// gateway's MAC, the uplink and its VLAN tag.
func (o Outside) Actions() []flow.Action {
	return []flow.Action{
		pipeline.RegNetwork.Set(uint64(o.External)),
		pipeline.SetClass(pipeline.ClassVM, 0),
		flow.SetField{F: pipeline.RegFlags.Field, Value: pipeline.FlagRouted, Mask: pipeline.FlagRouted},
		flow.Resubmit{InPort: flow.PortInPort, Table: pipeline.SNAT.ID()},
	}
}

// PacketIn answers a punted TCP segment with a RST: out of its ingress
// port (a client's VM port: only VM traffic reaches the lb table), or,
// for an outside client of a floating IP (State), through the floating
// IP's egress.
func (*handler) PacketIn(pi *app.PacketIn, out *app.Out) {
	rst := RST(pi.Data)
	if rst == nil {
		return
	}
	if st, ok := pi.State.(State); ok {
		if o, ok := st[pi.Cookie]; ok {
			out.PacketOuts = append(out.PacketOuts, app.PacketOut{BufferID: app.NoBuffer, InPort: flow.PortController,
				Actions: o.Actions(), Data: rst})
			return
		}
	}
	out.PacketOuts = append(out.PacketOuts, app.PacketOut{BufferID: app.NoBuffer, InPort: flow.PortController,
		Actions: []flow.Action{flow.Output{Port: pi.InPort}}, Data: rst})
}

// RST builds the RST that answers frame, an Ethernet/IPv4/TCP segment,
// as its destination would (RFC 9293 3.10.7.1: with the segment's ACK,
// seq = its ack number; without, seq 0 and ACK of everything it
// carried). It returns nil for anything else, or for a RST.
func RST(frame []byte) []byte {
	var eth layers.Ethernet
	var ip layers.IPv4
	var tcp layers.TCP
	var payload gopacket.Payload
	p := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &eth, &ip, &tcp, &payload)
	p.IgnoreUnsupported = true
	var got []gopacket.LayerType
	if err := p.DecodeLayers(frame, &got); err != nil && len(got) < 3 {
		return nil
	}
	if len(got) < 3 || got[2] != layers.LayerTypeTCP || tcp.RST {
		return nil
	}
	reth := layers.Ethernet{SrcMAC: eth.DstMAC, DstMAC: eth.SrcMAC, EthernetType: layers.EthernetTypeIPv4}
	rip := layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP,
		SrcIP: ip.DstIP, DstIP: ip.SrcIP}
	rtcp := layers.TCP{SrcPort: tcp.DstPort, DstPort: tcp.SrcPort, RST: true, Window: 0}
	if tcp.ACK {
		rtcp.Seq = tcp.Ack
	} else {
		n := uint32(len(tcp.Payload))
		if tcp.SYN {
			n++
		}
		if tcp.FIN {
			n++
		}
		rtcp.ACK, rtcp.Ack = true, tcp.Seq+n
	}
	if err := rtcp.SetNetworkLayerForChecksum(&rip); err != nil {
		return nil
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, &reth, &rip, &rtcp); err != nil {
		return nil
	}
	return buf.Bytes()
}
