package flow

import (
	"net"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Frames apps hand to the switch agent to send (app.Desired.Announce,
// packet-in replies).

// ARPRequest is a broadcast ARP request from sha/spa for tpa (spa == tpa:
// a gratuitous ARP; spa 0: a probe no neighbour cache learns from),
// untagged, padded to 60 bytes.
func ARPRequest(sha MAC, spa, tpa IPv4) []byte {
	mac := net.HardwareAddr{byte(sha >> 40), byte(sha >> 32), byte(sha >> 24), byte(sha >> 16), byte(sha >> 8), byte(sha)}
	eth := &layers.Ethernet{SrcMAC: mac, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP}
	arp := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: layers.ARPRequest, SourceHwAddress: mac, SourceProtAddress: ip4(spa),
		DstHwAddress: make([]byte, 6), DstProtAddress: ip4(tpa)}
	buf := gopacket.NewSerializeBuffer()
	// Fixed sizes of fixed-size layers: serializing cannot fail.
	_ = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, arp, gopacket.Payload(make([]byte, 60-14-28)))
	return buf.Bytes()
}

func ip4(a IPv4) []byte { return []byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)} }

// Tagged is Ethernet frame b with an 802.1Q tag for vlan inserted after
// the MACs (b itself when vlan is 0).
func Tagged(b []byte, vlan uint16) []byte {
	if vlan == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+4)
	out = append(out, b[:12]...)
	out = append(out, 0x81, 0x00, byte(vlan>>8)&0x0f, byte(vlan))
	return append(out, b[12:]...)
}
