package isolation

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/model"
)

// withMaxSize adds option 57 to a client packet (before the end option)
// and fixes up the IP and UDP lengths.
func withMaxSize(b []byte, size uint16) []byte {
	end := bytes.LastIndexByte(b, OptEnd)
	out := append(append([]byte{}, b[:end]...), OptMaxMsgSize, 2, byte(size>>8), byte(size), OptEnd)
	binary.BigEndian.PutUint16(out[ethLen+2:ethLen+4], uint16(len(out)-ethLen))
	binary.BigEndian.PutUint16(out[ethLen+ipLen+4:ethLen+ipLen+6], uint16(len(out)-ethLen-ipLen))
	return out
}

// longSubnet gives sub-a nRoutes /24 host routes and nDNS DNS servers and
// returns the DHCP handler of hv1 plus the expected option data.
func longSubnet(t *testing.T, nRoutes, nDNS int) (app.SwitchHandler, []flow.IPv4, []Route) {
	t.Helper()
	s := newScenario()
	sub := s.recs[model.KindSubnet]["sub-a"].(*model.Subnet)
	cp := *sub
	cp.HostRoutes, cp.DNSNameservers = nil, nil
	var dns []flow.IPv4
	var routes []Route
	for i := 0; i < nRoutes; i++ {
		dst := fmt.Sprintf("172.%d.%d.0", 16+i/256%16, i%256)
		cp.HostRoutes = append(cp.HostRoutes, model.HostRoute{Destination: dst + "/24", NextHop: "10.0.0.254"})
		routes = append(routes, Route{Dst: flow.MustIPv4(dst), Bits: 24, NextHop: flow.MustIPv4("10.0.0.254")})
	}
	for i := 0; i < nDNS; i++ {
		d := fmt.Sprintf("10.53.%d.%d", i/250, 1+i%250)
		cp.DNSNameservers = append(cp.DNSNameservers, d)
		dns = append(dns, flow.MustIPv4(d))
	}
	s.recs[model.KindSubnet]["sub-a"] = &cp
	a := New(Config{LeaseSeconds: 3600})
	d, err := a.Desired(s.input("hv1"))
	if err != nil {
		t.Fatal(err)
	}
	return withState{a.NewSwitchHandler(1), d.Handler}, dns, routes
}

func offer(t *testing.T, h app.SwitchHandler, pkt []byte) (decoded, int) {
	t.Helper()
	out := &app.Out{}
	h.PacketIn(&app.PacketIn{DPID: 1, InPort: 1, BufferID: app.NoBuffer, Data: pkt}, out)
	if len(out.PacketOuts) != 1 {
		t.Fatalf("want one packet-out, got %d", len(out.PacketOuts))
	}
	data := out.PacketOuts[0].Data
	return decodeReply(t, data), len(data)
}

func dnsData(dns []flow.IPv4) []byte {
	var b []byte
	for _, d := range dns {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return b
}

func routeData(routes []Route, gw string) []byte {
	return appendRoutes(nil, append(append([]Route{}, routes...), Route{NextHop: flow.MustIPv4(gw)}))
}

// 40 routes and 70 DNS servers need more than 255 bytes each: the options
// are split (RFC 3396) and come back whole once concatenated.
func TestDHCPLongOptionsRoundTrip(t *testing.T) {
	h, dns, routes := longSubnet(t, 40, 70)
	d, _ := offer(t, h, clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, ""))
	if got, want := d.opts[OptDNS], dnsData(dns); !bytes.Equal(got, want) {
		t.Errorf("DNS: got %d bytes, want %d (all 70 servers)", len(got), len(want))
	}
	if got, want := d.opts[OptClasslessRts], routeData(routes, "10.0.0.1"); !bytes.Equal(got, want) {
		t.Errorf("routes: got %d bytes, want %d (all 40 routes plus the default)", len(got), len(want))
	}
}

// 9,000 host routes: the reply is still one valid frame within the
// network's MTU; routes are dropped from the tail, the default route and
// the DNS servers stay.
func TestDHCPHugeSubnetBounded(t *testing.T) {
	h, dns, routes := longSubnet(t, 9000, 3)
	for _, c := range []struct {
		name    string
		pkt     []byte
		maxIPv4 int
	}{
		{"no option 57", clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, ""), 1458}, // net-a's MTU
		{"option 57 = 576", withMaxSize(clientPacket("fa:16:3e:0a:00:01", MsgDiscover, 1, ""), 576), 576},
		{"option 57 = 9000", withMaxSize(clientPacket("fa:16:3e:0a:00:01", MsgRequest, 1, "10.0.0.11"), 9000), 1458},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, n := offer(t, h, c.pkt)
			if n-ethLen > c.maxIPv4 {
				t.Fatalf("reply is %d bytes of IP, limit %d", n-ethLen, c.maxIPv4)
			}
			if !bytes.Equal(d.opts[OptDNS], dnsData(dns)) {
				t.Errorf("DNS servers dropped: %v", d.opts[OptDNS])
			}
			rt := d.opts[OptClasslessRts]
			// A prefix of the host routes, then the default route.
			dflt := []byte{0, 10, 0, 0, 1}
			if len(rt) < len(dflt) || !bytes.HasSuffix(rt, dflt) {
				t.Fatalf("no default route at the end of option 121 (%d bytes)", len(rt))
			}
			kept := (len(rt) - len(dflt)) / 8
			if kept == 0 || (len(rt)-len(dflt))%8 != 0 || !bytes.Equal(rt, routeData(routes[:kept], "10.0.0.1")) {
				t.Fatalf("option 121 is not a prefix of the host routes plus the default (%d bytes)", len(rt))
			}
			t.Logf("%d of 9000 routes in a %d-byte frame", kept, n)
		})
	}
}

func TestFitOptionsDropsDNSOnlyAfterRoutes(t *testing.T) {
	dns := make([]flow.IPv4, 300)
	routes := make([]Route, 10)
	gotDNS, gotRoutes, dd, dr := fitOptions(dns, routes, 1, 600)
	if len(gotRoutes) != 0 || dr != 10 || dd == 0 || optLen(4*len(gotDNS)) > 600 || optLen(4*(len(gotDNS)+1)) <= 600 {
		t.Fatalf("kept %d dns (dropped %d), %d routes (dropped %d)", len(gotDNS), dd, len(gotRoutes), dr)
	}
}
