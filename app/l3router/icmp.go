package l3router

import (
	"net"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
)

// NewSwitchHandler makes the ICMP error generator of one switch.
func (a *App) NewSwitchHandler(dpid uint64) app.SwitchHandler { return &handler{dpid: dpid} }

type handler struct {
	dpid uint64
	buf  gopacket.SerializeBuffer
}

func (h *handler) FlowRemoved(uint64, flow.Match) {}

// PacketIn answers a punted IPv4 packet sent to a router interface's MAC
// with ICMP time exceeded (TTL 0 or 1) or net unreachable (no route),
// from the interface's gateway address, back out of the ingress port.
func (h *handler) PacketIn(pi *app.PacketIn, out *app.Out) {
	gws, _ := pi.State.(Gateways)
	if gws == nil {
		return
	}
	if h.buf == nil {
		h.buf = gopacket.NewSerializeBuffer()
	}
	data, ok := Reply(gws, pi.Data, h.buf)
	if !ok {
		return
	}
	out.PacketOuts = append(out.PacketOuts, app.PacketOut{BufferID: app.NoBuffer, InPort: flow.PortController,
		Actions: []flow.Action{flow.Output{Port: pi.InPort}}, Data: data})
}

// Reply builds the ICMP error for a punted frame: time exceeded when its
// TTL is 0 or 1 (the TTL punt), net unreachable otherwise (no route). It
// answers only frames sent to a router interface MAC of gws, never an
// ICMP error, a fragment other than the first, or a broadcast source.
// The frame returned is a copy.
func Reply(gws Gateways, frame []byte, buf gopacket.SerializeBuffer) ([]byte, bool) {
	pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true, Lazy: true})
	eth, _ := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if eth == nil || ip == nil || len(eth.DstMAC) != 6 || eth.SrcMAC[0]&1 != 0 {
		return nil, false
	}
	var m flow.MAC
	for _, b := range eth.DstMAC {
		m = m<<8 | flow.MAC(b)
	}
	gw, ok := gws[m]
	if !ok || ip.FragOffset != 0 {
		return nil, false
	}
	if ip.Protocol == layers.IPProtocolICMPv4 {
		if ic, _ := pkt.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ic == nil || !isQuery(ic.TypeCode.Type()) {
			return nil, false
		}
	}
	tc := layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodeNet)
	if ip.TTL <= 1 {
		tc = layers.CreateICMPv4TypeCode(layers.ICMPv4TypeTimeExceeded, layers.ICMPv4CodeTTLExceeded)
	}
	// The original IP header and the first 8 bytes of its payload.
	orig := ip.Contents
	n := len(orig) + 8
	if full := len(ip.Contents) + len(ip.Payload); n > full {
		n = full
	}
	// Tagged frames are not answered: tenant frames reach us untagged,
	// and the quote below starts right after an untagged header.
	// (gopacket decodes a tag as its own layer, so eth.Contents is 14
	// bytes either way: the EtherType tells.)
	if eth.EthernetType != layers.EthernetTypeIPv4 {
		return nil, false
	}
	quote := append([]byte(nil), frame[14:14+n]...)
	g := net.IPv4(byte(gw>>24), byte(gw>>16), byte(gw>>8), byte(gw)).To4()
	rEth := &layers.Ethernet{SrcMAC: eth.DstMAC, DstMAC: eth.SrcMAC, EthernetType: layers.EthernetTypeIPv4}
	rIP := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: g, DstIP: ip.SrcIP}
	rICMP := &layers.ICMPv4{TypeCode: tc}
	if err := buf.Clear(); err != nil {
		return nil, false
	}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		rEth, rIP, rICMP, gopacket.Payload(quote)); err != nil {
		return nil, false
	}
	return append([]byte(nil), buf.Bytes()...), true
}

// isQuery reports whether an ICMP type is a query (never an error: no
// ICMP error answers an ICMP error, RFC 1812 4.3.2.7).
func isQuery(t uint8) bool {
	switch t {
	case layers.ICMPv4TypeEchoRequest, layers.ICMPv4TypeEchoReply, layers.ICMPv4TypeTimestampRequest,
		layers.ICMPv4TypeTimestampReply, layers.ICMPv4TypeInfoRequest, layers.ICMPv4TypeInfoReply,
		layers.ICMPv4TypeAddressMaskRequest, layers.ICMPv4TypeAddressMaskReply:
		return true
	}
	return false
}
