package isolation

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
)

// Header lengths are read as gopacket reads them: bytes past the IP
// datagram's total length are Ethernet padding, not options, and a UDP
// length below the 8-byte header is malformed (the hand-written parser
// ignored both fields).
func TestParseRequestHonoursHeaderLengths(t *testing.T) {
	p := withMaxSize(clientPacket("fa:16:3e:0a:00:01", MsgRequest, 3, "10.0.0.9"), 700)
	var r Request
	if err := ParseRequest(p, &r); err != nil || r.MaxMsgSize != 700 {
		t.Fatalf("well-formed request: %v, max size %d", err, r.MaxMsgSize)
	}
	// Option 57 and the end option are the last 5 bytes: cut them off by
	// IP total length only (the frame keeps them, as padding).
	cut := append([]byte{}, p...)
	binary.BigEndian.PutUint16(cut[ethLen+2:], uint16(len(cut)-ethLen-5))
	if err := ParseRequest(cut, &r); err != nil || r.MaxMsgSize != 0 || r.MsgType != MsgRequest {
		t.Errorf("IP length bounds the options: %v, max size %d", err, r.MaxMsgSize)
	}
	for _, ul := range []uint16{1, 7} {
		bad := append([]byte{}, p...)
		binary.BigEndian.PutUint16(bad[ethLen+ipLen+4:], ul)
		if err := ParseRequest(bad, &r); err == nil {
			t.Errorf("UDP length %d accepted", ul)
		}
	}
	// The decoder is reused: a later good packet parses whole again.
	if err := ParseRequest(p, &r); err != nil || r.MaxMsgSize != 700 || r.RequestedIP == 0 {
		t.Fatalf("reparse: %v %+v", err, r)
	}
}

// An option that overruns the packet is refused; a lone code byte at the
// very end (no length) is ignored, as before.
func TestParseRequestOptionBounds(t *testing.T) {
	p := clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, "")
	opts := ethLen + ipLen + udpLen + bootpLen + 4
	body := append([]byte{}, p[:opts]...)
	body = append(body, OptMsgType, 1, MsgDiscover, OptRequestedIP)
	fix := func(b []byte) []byte {
		binary.BigEndian.PutUint16(b[ethLen+2:], uint16(len(b)-ethLen))
		binary.BigEndian.PutUint16(b[ethLen+ipLen+4:], uint16(len(b)-ethLen-ipLen))
		return b
	}
	var r Request
	if err := ParseRequest(fix(append([]byte{}, body...)), &r); err != nil || r.MsgType != MsgDiscover {
		t.Errorf("lone trailing code: %v", err)
	}
	if err := ParseRequest(fix(append(append([]byte{}, body...), 4, 10, 0)), &r); err == nil {
		t.Error("overrunning option accepted")
	}
}

// FuzzDHCPReply runs whatever parses through the encoder: the reply is
// one well-formed frame (checked by the hand-rolled decoder of the tests,
// not by gopacket) that echoes the request's xid and chaddr.
func FuzzDHCPReply(f *testing.F) {
	f.Add(clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, "10.0.0.1"), uint16(0))
	f.Add(withMaxSize(clientPacket("fa:16:3e:0a:00:01", MsgRequest, 2, ""), 576), uint16(1400))
	ls := &lease{ip: 0x0a00000b, mask: 0xffffff00, router: 0x0a000001, server: 0x0a000002, srvMAC: 0x02000000000d,
		dns: []flow.IPv4{0x0a000035, 0x08080808}, leaseSec: 3600}
	for i := 0; i < 120; i++ {
		ls.routes = append(ls.routes, Route{Dst: flow.IPv4(0xac100000 + i<<8), Bits: 24, NextHop: 0x0a0000fe})
	}
	f.Fuzz(func(t *testing.T, b []byte, mtu uint16) {
		var r Request
		if ParseRequest(b, &r) != nil {
			return
		}
		l := *ls
		l.mtu = mtu
		for _, typ := range []uint8{MsgOffer, MsgAck, MsgNak} {
			out := reply(&r, &l, typ)
			d := decodeReply(t, out)
			if d.xid != r.XID || d.chaddr != r.CHAddr {
				t.Fatalf("reply xid %x chaddr %s, request %x %s", d.xid, d.chaddr, r.XID, r.CHAddr)
			}
			if n := len(out) - ethLen; n > replyLimit(mtu, r.MaxMsgSize) && n > ipLen+udpLen+300 {
				t.Fatalf("reply of %d bytes over the limit %d", n, replyLimit(mtu, r.MaxMsgSize))
			}
		}
	})
}

// A handler reuses its layers and buffers: a reply already handed out
// must not change when the next one is built.
func TestReplyNotOverwrittenByNext(t *testing.T) {
	h, _, _ := longSubnet(t, 40, 70)
	first, _ := offer(t, h, clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, ""))
	out := &app.Out{}
	h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, BufferID: app.NoBuffer, Data: clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 2, "")}, out)
	keep := append([]byte{}, out.PacketOuts[0].Data...)
	for _, p := range [][]byte{
		clientPacket("fa:16:3e:0a:00:01", MsgRequest, 3, "10.0.0.99"), // NAK: short, broadcast
		withMaxSize(clientPacket("fa:16:3e:0a:00:01", MsgRequest, 4, ""), 576),
	} {
		offer(t, h, p)
	}
	if !bytes.Equal(out.PacketOuts[0].Data, keep) {
		t.Fatal("an earlier reply changed when later ones were built")
	}
	if again := decodeReply(t, keep); again.xid != 2 || !bytes.Equal(again.opts[OptDNS], first.opts[OptDNS]) {
		t.Fatalf("earlier reply: xid %d", again.xid)
	}
}
