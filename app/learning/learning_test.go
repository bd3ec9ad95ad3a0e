package learning

import (
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

var update = flag.Bool("update", false, "rewrite golden files")

func frame(dst, src string) []byte {
	b := make([]byte, 60)
	d, s := flow.MustMAC(dst), flow.MustMAC(src)
	for i := 0; i < 6; i++ {
		b[i] = byte(uint64(d) >> (40 - 8*i))
		b[6+i] = byte(uint64(s) >> (40 - 8*i))
	}
	b[12], b[13] = 0x08, 0x00
	return b
}

func TestLearningConversation(t *testing.T) {
	h := New(Config{}).NewSwitchHandler(1)
	var out app.Out
	var log strings.Builder
	step := func(name string, inPort, buf uint32, dst, src string) {
		out.Reset()
		h.PacketIn(&app.PacketIn{DPID: 1, InPort: inPort, BufferID: buf, Data: frame(dst, src)}, &out)
		log.WriteString("# " + name + "\n")
		for _, f := range out.Flows {
			if err := pipeline.Check(&f.Flow); err != nil {
				t.Fatalf("%s: learned flow breaks the contract: %v", name, err)
			}
			op := "flow_mod add"
			if f.Delete {
				op = "flow_mod delete"
			}
			log.WriteString(op + " buffer=" + bufString(f.BufferID) + " " + f.Flow.String() + "\n")
		}
		for _, p := range out.PacketOuts {
			log.WriteString("packet_out buffer=" + bufString(p.BufferID) + " in_port=" + flow.PortString(p.InPort) + " actions=" + flow.ActionsString(p.Actions) + "\n")
		}
	}
	step("h1 ARP broadcast floods", 1, app.NoBuffer, "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:01")
	step("h2 replies to known h1: flow + packet-out", 2, app.NoBuffer, "00:00:00:00:00:01", "00:00:00:00:00:02")
	step("h1 to h2, buffered: flow releases the buffer", 1, 7, "00:00:00:00:00:02", "00:00:00:00:00:01")
	step("unknown destination floods", 1, app.NoBuffer, "00:00:00:00:00:99", "00:00:00:00:00:01")
	step("destination behind ingress port: nothing", 1, app.NoBuffer, "00:00:00:00:00:01", "00:00:00:00:00:03")
	step("h1 moves to port 4 and is relearned", 4, app.NoBuffer, "00:00:00:00:00:02", "00:00:00:00:00:01")
	step("h2 to h1 follows the move", 2, app.NoBuffer, "00:00:00:00:00:01", "00:00:00:00:00:02")

	golden := "testdata/conversation.golden"
	if *update {
		os.WriteFile(golden, []byte(log.String()), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if log.String() != string(want) {
		t.Fatalf("got:\n%s\nwant:\n%s", log.String(), want)
	}
}

func bufString(b uint32) string {
	if b == app.NoBuffer {
		return "none"
	}
	return flow.PortString(b)
}

func TestMACTableBounded(t *testing.T) {
	h := New(Config{MaxMACs: 4}).NewSwitchHandler(1).(*handler)
	var out app.Out
	for i := 0; i < 10; i++ {
		src := flow.MAC(0x020000000000 + uint64(i)).String()
		h.PacketIn(&app.PacketIn{InPort: 1, BufferID: app.NoBuffer, Data: frame("ff:ff:ff:ff:ff:ff", src)}, &out)
		if len(h.macs) > 4 {
			t.Fatalf("MAC table grew to %d", len(h.macs))
		}
	}
}

func BenchmarkPacketIn(b *testing.B) {
	h := New(Config{}).NewSwitchHandler(1)
	var out app.Out
	pis := make([]app.PacketIn, 1000)
	for i := range pis {
		pis[i] = app.PacketIn{InPort: 1, BufferID: uint32(i), Data: frame("00:00:00:00:00:01", flow.MAC(0x020000000000+uint64(i)).String())}
	}
	h.PacketIn(&app.PacketIn{InPort: 2, BufferID: app.NoBuffer, Data: frame("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:01")}, &out)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out.Reset()
		h.PacketIn(&pis[i%len(pis)], &out)
	}
}

// Finding 1: a frame too large to go back out in one packet-out (a
// packet-in with an empty match carries up to 65,501 bytes; a packet-out
// with one output action, at most MaxPacketOutData) is released by its
// buffer id when the switch gave one, and otherwise dropped and counted.
func TestFrameTooLargeForPacketOut(t *testing.T) {
	if MaxPacketOutData != 0xffff-ofproto.PacketOutOverhead {
		t.Fatalf("MaxPacketOutData %d out of step with ofproto (%d)", MaxPacketOutData, 0xffff-ofproto.PacketOutOverhead)
	}
	big := func(n int, dst string) []byte {
		f := make([]byte, n)
		copy(f, frame(dst, "02:00:00:00:00:01"))
		return f
	}
	h := New(Config{}).NewSwitchHandler(1)
	var out app.Out
	pin := func(buf uint32, data []byte) {
		out.Reset()
		h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, BufferID: buf, Data: data}, &out)
	}
	before := Dropped()
	pin(app.NoBuffer, big(65535-34, "ff:ff:ff:ff:ff:ff"))
	if len(out.PacketOuts) != 0 || Dropped() != before+1 {
		t.Fatalf("unbuffered 65,501-byte broadcast: %d packet-outs, %d dropped", len(out.PacketOuts), Dropped()-before)
	}
	pin(7, big(65535-34, "ff:ff:ff:ff:ff:ff"))
	if len(out.PacketOuts) != 1 || out.PacketOuts[0].BufferID != 7 || Dropped() != before+1 {
		t.Fatalf("buffered broadcast: %+v", out.PacketOuts)
	}
	pin(app.NoBuffer, big(MaxPacketOutData, "ff:ff:ff:ff:ff:ff"))
	if len(out.PacketOuts) != 1 || len(out.PacketOuts[0].Data) != MaxPacketOutData {
		t.Fatal("the largest frame that fits was not flooded")
	}
	// A known destination: the flow is still learned, only the frame
	// itself is dropped.
	out.Reset()
	h.PacketIn(&app.PacketIn{DPID: 1, InPort: 2, BufferID: app.NoBuffer, Data: frame("02:00:00:00:00:09", "02:00:00:00:00:02")}, &out)
	pin(app.NoBuffer, big(MaxPacketOutData+1, "02:00:00:00:00:02"))
	if len(out.Flows) != 1 || len(out.PacketOuts) != 0 || Dropped() != before+2 {
		t.Fatalf("unbuffered oversized unicast: %d flows, %d packet-outs, %d dropped", len(out.Flows), len(out.PacketOuts), Dropped()-before)
	}
}
