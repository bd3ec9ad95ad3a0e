package lb

import (
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
)

// estTracker says every packet is of an established connection.
type estTracker struct{}

func (estTracker) Track(p fakeswitch.Packet, _ uint16, _ bool) (uint32, uint32) {
	return flow.CTEstablished, 0
}

func (estTracker) TrackNAT(p fakeswitch.Packet, _ uint16, _ bool, _ *flow.NAT) (fakeswitch.Packet, uint32, uint32) {
	return p, flow.CTEstablished, 0
}

func frame(t *testing.T, tcp *layers.TCP, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{0xfa, 0x16, 0x3e, 0x0c, 0, 1}, DstMAC: net.HardwareAddr{0xfa, 0x16, 0x3e, 0xff, 1, 0},
		EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{10, 0, 0, 11}, DstIP: net.IP{10, 0, 0, 100}}
	tcp.SrcPort, tcp.DstPort = 40000, 80
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func synFrame(t *testing.T, seq uint32) []byte {
	return frame(t, &layers.TCP{SYN: true, Seq: seq}, nil)
}

func decodeRST(t *testing.T, b []byte) (*layers.Ethernet, *layers.IPv4, *layers.TCP) {
	t.Helper()
	p := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if eth == nil || ip == nil || tcp == nil {
		t.Fatalf("RST does not decode: %v", p)
	}
	// The checksums must be right, or the client's stack drops the RST.
	again := gopacket.NewSerializeBuffer()
	cp := *tcp
	_ = cp.SetNetworkLayerForChecksum(ip)
	if err := gopacket.SerializeLayers(again, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, &cp); err != nil {
		t.Fatal(err)
	}
	if string(again.Bytes()) != string(b) {
		t.Fatalf("RST checksums or lengths wrong:\n% x\n% x", b, again.Bytes())
	}
	return eth, ip, tcp
}

// The RST answers as the VIP: addresses and ports swapped; a SYN (no ACK)
// gets seq 0 and ACK of seq+1; a segment with ACK gets seq = its ack;
// data counts in the ACK; a RST or a non-TCP frame gets nothing.
func TestRST(t *testing.T) {
	eth, ip, tcp := decodeRST(t, RST(synFrame(t, 1000)))
	if eth.SrcMAC.String() != "fa:16:3e:ff:01:00" || eth.DstMAC.String() != "fa:16:3e:0c:00:01" ||
		!ip.SrcIP.Equal(net.IP{10, 0, 0, 100}) || !ip.DstIP.Equal(net.IP{10, 0, 0, 11}) ||
		tcp.SrcPort != 80 || tcp.DstPort != 40000 || !tcp.RST || !tcp.ACK || tcp.SYN || tcp.Seq != 0 || tcp.Ack != 1001 {
		t.Fatalf("RST for a SYN: %v %v %v", eth, ip, tcp)
	}
	_, _, tcp = decodeRST(t, RST(frame(t, &layers.TCP{ACK: true, PSH: true, Seq: 5, Ack: 777}, []byte("hello"))))
	if !tcp.RST || tcp.ACK || tcp.Seq != 777 {
		t.Fatalf("RST for an ACK segment: %v", tcp)
	}
	_, _, tcp = decodeRST(t, RST(frame(t, &layers.TCP{FIN: true, Seq: 5}, []byte("hello"))))
	if !tcp.ACK || tcp.Ack != 5+5+1 {
		t.Fatalf("RST for FIN with data: %v", tcp)
	}
	if RST(frame(t, &layers.TCP{RST: true, Seq: 5}, nil)) != nil {
		t.Fatalf("answered a RST")
	}
	if RST([]byte{1, 2, 3}) != nil {
		t.Fatalf("answered garbage")
	}
}
