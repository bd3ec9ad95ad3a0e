package isolation

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
)

// clientPacket builds a DHCP client message as a VM sends it.
func clientPacket(mac string, typ uint8, xid uint32, requested string) []byte {
	m := flow.MustMAC(mac)
	bp := make([]byte, bootpLen)
	bp[0], bp[1], bp[2] = 1, 1, 6
	binary.BigEndian.PutUint32(bp[4:8], xid)
	binary.BigEndian.PutUint16(bp[10:12], 0) // unicast replies welcome
	putMAC(bp[28:34], m)
	bp = append(bp, magic[:]...)
	bp = append(bp, OptPad, OptMsgType, 1, typ)
	if requested != "" {
		bp = appendIPOpt(bp, OptRequestedIP, flow.MustIPv4(requested))
	}
	bp = append(bp, 55, 4, OptSubnetMask, OptRouter, OptDNS, OptClasslessRts, OptEnd)
	b := make([]byte, ethLen+ipLen+udpLen)
	putMAC(b[0:6], 0xffffffffffff)
	putMAC(b[6:12], m)
	binary.BigEndian.PutUint16(b[12:14], flow.EthTypeIPv4)
	b = append(b, bp...)
	ip := b[ethLen:]
	ip[0], ip[8], ip[9] = 0x45, 64, flow.ProtoUDP
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(b)-ethLen))
	binary.BigEndian.PutUint32(ip[16:20], 0xffffffff)
	udp := b[ethLen+ipLen:]
	binary.BigEndian.PutUint16(udp[0:2], 68)
	binary.BigEndian.PutUint16(udp[2:4], 67)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	return b
}

type decoded struct {
	dstMAC, srcMAC flow.MAC
	srcIP, dstIP   flow.IPv4
	xid            uint32
	yiaddr         flow.IPv4
	chaddr         flow.MAC
	opts           map[byte][]byte
}

// decodeReply parses a server reply and checks its framing and checksums.
func decodeReply(t *testing.T, b []byte) decoded {
	t.Helper()
	if len(b) < ethLen+ipLen+udpLen+bootpLen+4 || binary.BigEndian.Uint16(b[12:14]) != flow.EthTypeIPv4 {
		t.Fatalf("short or not IPv4: %d bytes", len(b))
	}
	ip := b[ethLen : ethLen+ipLen]
	if checksum(ip) != 0 {
		t.Fatal("bad IPv4 header checksum")
	}
	if int(binary.BigEndian.Uint16(ip[2:4])) != len(b)-ethLen || ip[9] != flow.ProtoUDP {
		t.Fatal("bad IPv4 length or protocol")
	}
	udp := b[ethLen+ipLen:]
	if binary.BigEndian.Uint16(udp[0:2]) != 67 || binary.BigEndian.Uint16(udp[2:4]) != 68 || int(binary.BigEndian.Uint16(udp[4:6])) != len(udp) {
		t.Fatal("bad UDP header")
	}
	if fold(sum16(udp, sum16(ip[12:20], 0)+flow.ProtoUDP+uint32(len(udp)))) != 0 {
		t.Fatal("bad UDP checksum")
	}
	bp := udp[udpLen:]
	if bp[0] != 2 || !bytes.Equal(bp[236:240], magic[:]) {
		t.Fatal("not a BOOTREPLY")
	}
	d := decoded{dstMAC: flow.MACFromBytes(b[0:6]), srcMAC: flow.MACFromBytes(b[6:12]),
		srcIP: flow.IPv4(binary.BigEndian.Uint32(ip[12:16])), dstIP: flow.IPv4(binary.BigEndian.Uint32(ip[16:20])),
		xid: binary.BigEndian.Uint32(bp[4:8]), yiaddr: flow.IPv4(binary.BigEndian.Uint32(bp[16:20])),
		chaddr: flow.MACFromBytes(bp[28:34]), opts: map[byte][]byte{}}
	o := bp[240:]
	for i := 0; i < len(o); {
		if o[i] == OptPad {
			i++
			continue
		}
		if o[i] == OptEnd {
			return d
		}
		if i+1 >= len(o) || i+2+int(o[i+1]) > len(o) {
			t.Fatalf("option %d overruns the packet", o[i])
		}
		n := int(o[i+1])
		// RFC 3396: an option that appears more than once is one long
		// option, its pieces concatenated in order.
		d.opts[o[i]] = append(d.opts[o[i]], o[i+2:i+2+n]...)
		i += 2 + n
	}
	t.Fatal("no end option")
	return d
}

func ipBytes(ss ...string) []byte {
	var b []byte
	for _, s := range ss {
		b = binary.BigEndian.AppendUint32(b, uint32(flow.MustIPv4(s)))
	}
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// withState is a switch handler fed the Handler state of one Desired, as
// the switch agent does (app.PacketIn.State).
type withState struct {
	app.SwitchHandler
	st any
}

func (w withState) PacketIn(pi *app.PacketIn, out *app.Out) {
	pi.State = w.st
	w.SwitchHandler.PacketIn(pi, out)
}

func dhcpSetup(t *testing.T) (app.SwitchHandler, *app.Out) {
	a := New(Config{LeaseSeconds: 3600})
	d, err := a.Desired(newScenario().input("hv1"))
	if err != nil {
		t.Fatal(err)
	}
	return withState{a.NewSwitchHandler(1), d.Handler}, &app.Out{}
}

func TestDHCPDiscoverOffer(t *testing.T) {
	h, out := dhcpSetup(t)
	h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, BufferID: app.NoBuffer, Data: clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 0xdeadbeef, "")}, out)
	if len(out.PacketOuts) != 1 || len(out.Flows) != 0 {
		t.Fatalf("want one packet-out, got %+v", out)
	}
	po := out.PacketOuts[0]
	if po.BufferID != app.NoBuffer || po.InPort != flow.PortController || flow.ActionsString(po.Actions) != "output:1" {
		t.Fatalf("packet-out %+v", po)
	}
	d := decodeReply(t, po.Data)
	want := map[byte][]byte{
		OptMsgType:     {MsgOffer},
		OptServerID:    ipBytes("10.0.0.2"), // the network's DHCP port
		OptLeaseTime:   u32(3600),
		OptRenewalTime: u32(1800),
		OptRebindTime:  u32(3150),
		OptSubnetMask:  ipBytes("255.255.255.0"),
		OptRouter:      ipBytes("10.0.0.1"),
		OptDNS:         ipBytes("10.0.0.53", "8.8.8.8"),
		OptMTU:         {0x05, 0xb2}, // 1458
		// 192.168.0.0/16 via 10.0.0.254, then the default route via the gateway.
		OptClasslessRts: {16, 192, 168, 10, 0, 0, 254, 0, 10, 0, 0, 1},
	}
	for code, v := range want {
		if !bytes.Equal(d.opts[code], v) {
			t.Errorf("option %d = %v, want %v", code, d.opts[code], v)
		}
	}
	if len(d.opts) != len(want) {
		t.Errorf("options %v, want exactly %v", d.opts, want)
	}
	if d.xid != 0xdeadbeef || d.yiaddr != flow.MustIPv4("10.0.0.11") || d.chaddr != flow.MustMAC("fa:16:3e:0a:00:01") {
		t.Errorf("header xid=%x yiaddr=%s chaddr=%s", d.xid, d.yiaddr, d.chaddr)
	}
	if d.dstMAC != flow.MustMAC("fa:16:3e:0a:00:01") || d.srcMAC != flow.MustMAC("fa:16:3e:00:00:0d") ||
		d.srcIP != flow.MustIPv4("10.0.0.2") || d.dstIP != flow.MustIPv4("10.0.0.11") {
		t.Errorf("addresses %s->%s %s->%s", d.srcMAC, d.dstMAC, d.srcIP, d.dstIP)
	}
}

// The other tenant's port with the same address gets its own network's
// answer; a subnet without gateway gets no router option.
func TestDHCPOverlappingTenantsAndNoGateway(t *testing.T) {
	h, out := dhcpSetup(t)
	h.PacketIn(&app.PacketIn{InPort: 2, Data: clientPacket("fa:16:3e:0b:00:01", MsgDiscover, 1, "")}, out)
	d := decodeReply(t, out.PacketOuts[0].Data)
	if d.yiaddr != flow.MustIPv4("10.0.0.11") || !bytes.Equal(d.opts[OptServerID], ipBytes("10.0.0.1")) || d.opts[OptDNS] != nil || d.opts[OptClasslessRts] != nil {
		t.Errorf("net-b offer: yiaddr %s opts %v", d.yiaddr, d.opts)
	}
	if d.srcMAC != flow.MustMAC("02:4e:44:48:43:50") {
		t.Errorf("no DHCP port: want the configured server MAC, got %s", d.srcMAC)
	}
	out.Reset()
	h.PacketIn(&app.PacketIn{InPort: 3, Data: clientPacket("fa:16:3e:0f:00:01", MsgDiscover, 2, "")}, out)
	d = decodeReply(t, out.PacketOuts[0].Data)
	if d.opts[OptRouter] != nil || !bytes.Equal(d.opts[OptServerID], ipBytes("10.0.0.1")) || !bytes.Equal(d.opts[OptMTU], []byte{0x05, 0xdc}) {
		t.Errorf("net-v offer: %v", d.opts)
	}
}

func TestDHCPRequestAckAndNak(t *testing.T) {
	h, out := dhcpSetup(t)
	h.PacketIn(&app.PacketIn{InPort: 1, Data: clientPacket("fa:16:3e:0a:00:01", MsgRequest, 7, "10.0.0.11")}, out)
	d := decodeReply(t, out.PacketOuts[0].Data)
	if !bytes.Equal(d.opts[OptMsgType], []byte{MsgAck}) || d.yiaddr != flow.MustIPv4("10.0.0.11") {
		t.Fatalf("want ACK for the port's address, got %v", d.opts[OptMsgType])
	}
	out.Reset()
	h.PacketIn(&app.PacketIn{InPort: 1, Data: clientPacket("fa:16:3e:0a:00:01", MsgRequest, 8, "10.0.0.99")}, out)
	d = decodeReply(t, out.PacketOuts[0].Data)
	if !bytes.Equal(d.opts[OptMsgType], []byte{MsgNak}) || d.yiaddr != 0 || d.opts[OptLeaseTime] != nil || d.dstMAC != 0xffffffffffff {
		t.Fatalf("want broadcast NAK, got %v yiaddr %s", d.opts, d.yiaddr)
	}
}

func TestDHCPIgnores(t *testing.T) {
	h, out := dhcpSetup(t)
	cases := map[string]*app.PacketIn{
		"unknown port":      {InPort: 42, Data: clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, "")},
		"spoofed chaddr":    {InPort: 1, Data: clientPacket("fa:16:3e:0b:00:01", MsgDiscover, 1, "")},
		"release":           {InPort: 1, Data: clientPacket("fa:16:3e:0a:00:01", MsgRelease, 1, "")},
		"truncated":         {InPort: 1, Data: clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, "")[:200]},
		"not ipv4":          {InPort: 1, Data: make([]byte, 60)},
		"port without dhcp": {InPort: 10, Data: clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, "")},
	}
	for name, pi := range cases {
		out.Reset()
		h.PacketIn(pi, out)
		if len(out.PacketOuts)+len(out.Flows) != 0 {
			t.Errorf("%s: answered", name)
		}
	}
	// A switch the app never computed flows for.
	out.Reset()
	New(Config{}).NewSwitchHandler(1).PacketIn(&app.PacketIn{InPort: 1, Data: clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, "")}, out)
	if len(out.PacketOuts) != 0 {
		t.Error("answered without a lease table")
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, "10.0.0.1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		_ = ParseRequest(b, &r)
	})
}

func BenchmarkParseRequest(b *testing.B) {
	p := clientPacket("fa:16:3e:0a:00:01", MsgRequest, 1, "10.0.0.11")
	var r Request
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := ParseRequest(p, &r); err != nil {
			b.Fatal(err)
		}
	}
}
