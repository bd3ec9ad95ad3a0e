package isolation

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
)

// BenchmarkDHCPPacketIn is the whole punt path: parse a DHCPREQUEST and
// encode the ACK frame.
func BenchmarkDHCPPacketIn(b *testing.B) {
	a := New(Config{LeaseSeconds: 3600})
	if _, err := a.Desired(newScenario().input("hv1")); err != nil {
		b.Fatal(err)
	}
	h := a.NewSwitchHandler(1)
	pi := &app.PacketIn{DPID: 1, InPort: 1, BufferID: app.NoBuffer, Data: clientPacket("fa:16:3e:0a:00:01", MsgRequest, 7, "10.0.0.11")}
	out := &app.Out{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		out.Reset()
		h.PacketIn(pi, out)
		if len(out.PacketOuts) != 1 {
			b.Fatal("no reply")
		}
	}
}
