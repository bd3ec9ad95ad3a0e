package l3router

import (
	"testing"

	"github.com/gopacket/gopacket"
)

// FuzzReply: any frame a tenant can send to the router MAC is handled
// without a panic, and an answer is always an ICMP error from the router.
func FuzzReply(f *testing.F) {
	t := &testing.T{}
	f.Add(frame(t, macA1, rA1, "10.0.1.11", "8.8.8.8", 64, false))
	f.Add(frame(t, macA1, rA1, "10.0.1.11", "10.0.2.12", 1, true))
	f.Add([]byte{})
	gws := Gateways{rA1: 0x0a000101}
	buf := gopacket.NewSerializeBuffer()
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := Reply(gws, b, buf)
		if !ok {
			return
		}
		if len(out) < 14+20+8 || out[12] != 8 || out[13] != 0 || out[14+9] != 1 {
			t.Fatalf("answer is not an ICMP packet: %x", out)
		}
	})
}

// A tagged frame gets no answer: its quote would start inside the tag.
func TestReplyTaggedFrame(t *testing.T) {
	f := frame(t, macA1, rA1, "10.0.1.11", "8.8.8.8", 1, false)
	if _, ok := Reply(Gateways{rA1: 0x0a000101}, f, gopacket.NewSerializeBuffer()); !ok {
		t.Fatal("the untagged frame is not answered: the test's frame is wrong")
	}
	tagged := append(append(append([]byte(nil), f[:12]...), 0x81, 0x00, 0x00, 0x64), f[12:]...)
	if out, ok := Reply(Gateways{rA1: 0x0a000101}, tagged, gopacket.NewSerializeBuffer()); ok {
		t.Fatalf("a tagged frame was answered: %x", out)
	}
}
