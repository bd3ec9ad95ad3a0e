package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
)

// ofpPrint decodes msg with ovs-ofctl, the reference decoder, and fails the
// test if ovs-ofctl reports a decoding problem.
func ofpPrint(t *testing.T, msg []byte) string {
	t.Helper()
	bin, err := exec.LookPath("ovs-ofctl")
	if err != nil {
		t.Skip("ovs-ofctl not installed (apt-get install openvswitch-switch)")
	}
	out, err := exec.Command(bin, "ofp-print", hex.EncodeToString(msg)).CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-ofctl ofp-print: %v\n%s", err, out)
	}
	s := string(out)
	if strings.Contains(s, "***") || strings.Contains(s, "decode error") {
		t.Fatalf("ovs-ofctl could not decode %x:\n%s", msg, s)
	}
	return s
}

func wantAll(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("ofp-print output lacks %q:\n%s", w, got)
		}
	}
}

func multipartRequest(xid uint32, typ uint16) []byte {
	b := newMsg(ofptMultipartRequest, 16, xid)
	binary.BigEndian.PutUint16(b[8:], typ)
	return b
}

func bundleControl(xid, id uint32, typ, flags uint16) []byte {
	b := newMsg(ofptExperimenter, bundleControlLen, xid)
	binary.BigEndian.PutUint32(b[8:], onfExperimenterID)
	binary.BigEndian.PutUint32(b[12:], onftBundleControl)
	binary.BigEndian.PutUint32(b[16:], id)
	binary.BigEndian.PutUint16(b[20:], typ)
	binary.BigEndian.PutUint16(b[22:], flags)
	return b
}

func TestHelloDecodes(t *testing.T) {
	got := ofpPrint(t, encodeHello(1))
	wantAll(t, got, "OFPT_HELLO (OF1.3) (xid=0x1)", "version bitmap: 0x04")
}

func TestFeaturesReplyDecodes(t *testing.T) {
	got := ofpPrint(t, encodeFeaturesReply(0x42, 7))
	wantAll(t, got, "OFPT_FEATURES_REPLY (OF1.3) (xid=0x42)", "dpid:0000000000000007",
		"n_tables:254, n_buffers:256")
}

func TestPacketInDecodes(t *testing.T) {
	got := ofpPrint(t, encodePacketIn(3, 5, 1, dstMAC(7), srcMAC(7, 42)))
	wantAll(t, got, "OFPT_PACKET_IN (OF1.3) (xid=0x3)", "total_len=64", "in_port=1",
		"(via no_match)", "data_len=64", "buffer=0x00000005",
		"udp,", "dl_src=00:00:07:00:00:2a", "dl_dst=02:00:00:00:00:07",
		"nw_src=198.51.100.1", "nw_dst=192.0.2.1", "nw_ttl=64", "tp_src=40000", "tp_dst=5001")
	if len(encodePacketIn(0, 0, 1, dstMAC(1), srcMAC(1, 0))) != packetInLen {
		t.Fatal("packet-in length constant is off")
	}
}

// TestStampedPacketInDecodes checks the in-place patching used on the hot path.
func TestStampedPacketInDecodes(t *testing.T) {
	b := &bench{cfg: config{macs: 1000}}
	s := newFakeSwitch(b, 2, nil)
	s.bufID, s.macIdx = 255, 999
	p := append([]byte(nil), s.lat...)
	id, mac := s.stamp(p)
	if id != 255 || mac != srcMAC(3, 999) || s.bufID != 0 || s.macIdx != 0 {
		t.Fatalf("stamp: id=%d mac=%x next=%d/%d", id, mac, s.bufID, s.macIdx)
	}
	got := ofpPrint(t, p)
	wantAll(t, got, "buffer=0x000000ff", "in_port=1", "dl_src=00:00:03:00:03:e7", "dl_dst=02:00:00:00:00:03")
	// The learning packet-in: source is the destination MAC, from port 2.
	got = ofpPrint(t, encodePacketIn(9, 1, 2, broadcastMAC, dstMAC(3)))
	wantAll(t, got, "in_port=2", "dl_src=02:00:00:00:00:03", "dl_dst=ff:ff:ff:ff:ff:ff")
}

func TestRepliesDecode(t *testing.T) {
	role := newMsg(ofptRoleRequest, 24, 3)
	binary.BigEndian.PutUint32(role[8:], 2) // MASTER
	binary.BigEndian.PutUint64(role[16:], 77)
	bundleReply, ok := encodeBundleReply(bundleControl(4, 5, 4, 3))
	if !ok {
		t.Fatal("no reply to a bundle COMMIT_REQUEST")
	}
	echo := append(newMsg(ofptEchoRequest, 8, 11), 'h', 'i')
	binary.BigEndian.PutUint16(echo[2:], 10)
	cases := []struct {
		name string
		msg  []byte
		want []string
	}{
		{"port desc", encodeMultipartReply(multipartRequest(9, ofpmpPortDesc), 7),
			[]string{"OFPST_PORT_DESC reply (OF1.3) (xid=0x9)", " 1(ofb7-1): addr:02:0f:00:07:00:01", " 2(ofb7-2)", "state:      LIVE"}},
		{"desc", encodeMultipartReply(multipartRequest(9, ofpmpDesc), 7),
			[]string{"OFPST_DESC reply (OF1.3)", "DP Description: ofbench switch 7"}},
		{"flow stats", encodeMultipartReply(multipartRequest(9, 1), 7), []string{"OFPST_FLOW reply (OF1.3) (xid=0x9)"}},
		{"aggregate", encodeMultipartReply(multipartRequest(9, ofpmpAggregate), 7), []string{"OFPST_AGGREGATE reply (OF1.3)", "flow_count=0"}},
		{"role", encodeRoleReply(role), []string{"OFPT_ROLE_REPLY (OF1.3) (xid=0x3): role=primary generation_id=77"}},
		{"bundle", bundleReply, []string{"ONFT_BUNDLE_CONTROL (OF1.3) (xid=0x4)", "bundle_id=0x5 type=COMMIT_REPLY flags=atomic ordered"}},
		{"get config", encodeGetConfigReply(6, 0, 128), []string{"OFPT_GET_CONFIG_REPLY (OF1.3) (xid=0x6): frags=normal miss_send_len=128"}},
		{"get async", encodeGetAsyncReply(5), []string{"OFPT_GET_ASYNC_REPLY (OF1.3) (xid=0x5)", "PACKET_IN: no_match action"}},
		{"barrier", encodeBarrierReply(8), []string{"OFPT_BARRIER_REPLY (OF1.3) (xid=0x8)"}},
		{"echo", encodeEchoReply(echo), []string{"OFPT_ECHO_REPLY (OF1.3) (xid=0xb)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantAll(t, ofpPrint(t, c.msg), c.want...) })
	}
}

func TestBundleReplyTypes(t *testing.T) {
	for req, want := range map[uint16]uint16{0: 1, 2: 3, 4: 5, 6: 7} {
		r, ok := encodeBundleReply(bundleControl(1, 9, req, 0))
		if !ok || binary.BigEndian.Uint16(r[20:]) != want || binary.BigEndian.Uint32(r[16:]) != 9 {
			t.Errorf("bundle request type %d: reply %x ok=%v", req, r, ok)
		}
	}
	if _, ok := encodeBundleReply(bundleControl(1, 9, 1, 0)); ok {
		t.Error("replied to a bundle reply")
	}
	add := bundleControl(1, 9, 0, 0)
	binary.BigEndian.PutUint32(add[12:], 2301) // bundle add: no reply
	if _, ok := encodeBundleReply(add); ok {
		t.Error("replied to a bundle add message")
	}
}

func TestNegotiateHello(t *testing.T) {
	withBitmap := func(version uint8, bitmap uint32) []byte {
		b := newMsg(ofptHello, 16, 1)
		b[0] = version
		binary.BigEndian.PutUint16(b[8:], ofpHelloElemBitmap)
		binary.BigEndian.PutUint16(b[10:], 8)
		binary.BigEndian.PutUint32(b[12:], bitmap)
		return b
	}
	plain := func(version uint8) []byte { b := newMsg(ofptHello, 8, 1); b[0] = version; return b }
	ok := [][]byte{plain(4), plain(5), plain(6), withBitmap(6, 0x7e), withBitmap(6, 0x70), withBitmap(4, 0x10)}
	for _, h := range ok {
		if v, err := negotiateHello(h); err != nil || v != ofpVersion13 {
			t.Errorf("HELLO %x: version %d, %v", h, v, err)
		}
	}
	bad := [][]byte{plain(1), withBitmap(6, 0x62), withBitmap(1, 0x02)}
	for _, h := range bad {
		if _, err := negotiateHello(h); err == nil {
			t.Errorf("HELLO %x: negotiated, want an error", h)
		}
	}
}

func TestResponseRef(t *testing.T) {
	fm := newMsg(ofptFlowMod, 56, 1)
	binary.BigEndian.PutUint32(fm[32:], 17)
	if id, _ := responseRef(fm); id != 17 {
		t.Errorf("flow_mod buffer id %d", id)
	}
	// PACKET_OUT without buffer, one 16-byte output action, then the frame.
	frame := encodePacketIn(0, 0, 1, dstMAC(1), srcMAC(1, 5))[piOffFrame:]
	po := newMsg(ofptPacketOut, 24+16+len(frame), 1)
	binary.BigEndian.PutUint32(po[8:], ofpNoBuffer)
	binary.BigEndian.PutUint16(po[16:], 16)
	copy(po[40:], frame)
	id, src := responseRef(po)
	want := srcMAC(1, 5)
	if id != ofpNoBuffer || !bytes.Equal(src, want[:]) {
		t.Errorf("packet_out ref: id=%#x src=%x", id, src)
	}
}
