package secgroup

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/internal/ofovs"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/reconcile"
	"github.com/nimbus-sdn/nimbus/switches"
)

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ovsCase is a packet, where it enters hv1, and the conntrack state each
// ct() recirculation reports (ofproto/trace's --ct-next; the fake
// switch's tracker answers the same).
type ovsCase struct {
	name string
	in   uint32
	pkt  fakeswitch.Packet
	ct   []uint32 // state of the 1st, 2nd... recirculation; none: +new
}

func ovsCases() []ovsCase {
	est := uint32(flow.CTEstablished | flow.CTReply)
	v6 := fakeswitch.Packet{EthSrc: macA2, EthDst: macA1, EthType: 0x86dd}
	arpTo := func(src flow.MAC, spa, tpa string) fakeswitch.Packet {
		return fakeswitch.Packet{EthSrc: src, EthDst: bcast, EthType: flow.EthTypeARP, ARPOp: 1, ARPSha: src,
			ARPSpa: flow.MustIPv4(spa), ARPTpa: flow.MustIPv4(tpa)}
	}
	return []ovsCase{
		{"port range: tcp 8000 to a1", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 40000, 8000)), nil},
		{"port range: tcp 8005 to a1", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 40000, 8005)), nil},
		{"port range: tcp 8010 to a1", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 40000, 8010)), nil},
		{"port range: tcp 7999 to a1 (denied)", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 40000, 7999)), nil},
		{"port range: tcp 8011 to a1 (denied)", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 40000, 8011)), nil},
		{"prefix: udp 53 from 192.168.3.4", tunnel, viaTunnel(ipPkt(macA2, macA1, "192.168.3.4", "10.0.0.11", flow.ProtoUDP, 999, 53)), nil},
		{"prefix: udp 53 from 10.0.0.12 (denied)", tunnel, viaTunnel(ipPkt(macA2, macA1, "10.0.0.12", "10.0.0.11", flow.ProtoUDP, 999, 53)), nil},
		{"icmp type/code + remote group: ping from a6", tunnel, viaTunnel(icmp(macA6, macA1, "10.0.0.16", "10.0.0.11", 8)), nil},
		{"icmp: ping from a2, not in the group (denied)", tunnel, viaTunnel(icmp(macA2, macA1, "10.0.0.12", "10.0.0.11", 8)), nil},
		{"icmp: echo reply type 0, new (denied)", tunnel, viaTunnel(icmp(macA6, macA1, "10.0.0.16", "10.0.0.11", 0)), nil},
		{"protocol by number: 47", tunnel, viaTunnel(ipPkt(macA2, macA1, "10.0.0.12", "10.0.0.11", 47, 0, 0)), nil},
		{"protocol by number: 50 (denied)", tunnel, viaTunnel(ipPkt(macA2, macA1, "10.0.0.12", "10.0.0.11", 50, 0, 0)), nil},
		{"remote group: a6 to a5", tunnel, viaTunnel(tcp(macA6, macA5, "10.0.0.16", "10.0.0.15", 1, 2)), nil},
		{"remote group: address pair 10.0.5.7 to a5", tunnel, viaTunnel(tcp(macA6, macA5, "10.0.5.7", "10.0.0.15", 1, 2)), nil},
		{"remote group: a2 to a5 (denied)", tunnel, viaTunnel(tcp(macA2, macA5, "10.0.0.12", "10.0.0.15", 1, 2)), nil},
		{"stateful: reply to a1, no ingress rule", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 5000, 33000)), []uint32{est}},
		{"stateful: invalid (dropped)", tunnel, viaTunnel(tcp(macA2, macA1, "10.0.0.12", "10.0.0.11", 5000, 33000)), []uint32{flow.CTInvalid}},
		{"stateful: related ICMP error", tunnel, viaTunnel(icmp(macA2, macA1, "10.0.0.12", "10.0.0.11", 3)), []uint32{flow.CTRelated}},
		{"egress any: a1 opens to a2", 1, tcp(macA1, macA2, "10.0.0.11", "10.0.0.12", 33000, 5000), nil},
		{"egress: a1 (web) to a5, a5 takes only default (denied)", 1, tcp(macA1, macA5, "10.0.0.11", "10.0.0.15", 1000, 2000), nil},
		{"local: a5 to a1 tcp 8001 (two conntrack passes)", 4, tcp(macA5, macA1, "10.0.0.15", "10.0.0.11", 5555, 8001), nil},
		{"no group: a3 to a2 (denied)", 2, tcp(macA3, macA2, "10.0.0.13", "10.0.0.12", 1, 80), nil},
		{"no group: to a3 (denied)", tunnel, viaTunnel(tcp(macA2, macA3, "10.0.0.12", "10.0.0.13", 1, 80)), nil},
		{"no group: ARP to a3 passes", tunnel, viaTunnel(arpTo(macA2, "10.0.0.12", "10.0.0.13")), nil},
		{"no group: a VM answering DHCP (denied)", 2, ipPkt(macA3, macA2, "10.0.0.13", "10.0.0.12", flow.ProtoUDP, 67, 68), nil},
		{"port security off: to a4", tunnel, viaTunnel(tcp(macA2, macA4, "10.0.0.12", "10.0.0.14", 1, 9999)), nil},
		{"port security off: from a4", 3, tcp(macA4, macA2, "10.0.0.14", "10.0.0.12", 1, 9999), nil},
		{"IPv6 to a1 (dropped, not carried)", tunnel, viaTunnel(v6), nil},
		{"IPv6 from a1 (dropped by port security)", 1, fakeswitch.Packet{EthSrc: macA1, EthDst: macA2, EthType: 0x86dd}, nil},
		{"IPv6 RA multicast from the tunnel: a4 only", tunnel, viaTunnel(fakeswitch.Packet{EthSrc: macA2, EthDst: flow.MustMAC("33:33:00:00:00:01"), EthType: 0x86dd}), nil},
	}
}

// TestWalkAgreesWithOVS is the oracle test of this app's flows: hv1's
// whole state (pipeline, isolation, security groups, conjunctive
// matches included) goes into a real OVS bridge through our codec, and
// every packet of ovsCases goes through the fake switch and through
// `ovs-appctl ofproto/trace` (with --ct-next for the conntrack state);
// the verdict replayed from the trace's datapath actions must equal the
// fake switch's. It runs with remote group bits and without (remote
// addresses as a conjunction clause).
func TestWalkAgreesWithOVS(t *testing.T) {
	ovslab.RequireE2E(t)
	// Underlay with a free /30 for the GRE port (OVS's native tunnelling
	// needs a route), as app/isolation's oracle test.
	under, remote := ovslab.TunnelUnderlay(t)

	br, conn := ofovs.Bridge(t)
	for _, n := range hv1Ports {
		if n != tunnel {
			br.AddPort("", int(n))
		}
	}
	br.AddPortType("", tunnel, "gre", map[string]string{"remote_ip": remote, "key": "flow"})
	ofsw := &switches.OFSwitch{Conn: conn}
	dp := fakeswitch.ParseDpifShow(sh(t, "ovs-appctl", "dpif/show"))
	x := &fakeswitch.Replay{ODP: dp[br.Name], Tunnels: map[uint32]bool{tunnel: true}, Underlay: map[int]bool{}}
	for odp, of := range dp[under.Name] {
		if of == 1 {
			x.Underlay[odp] = true
		}
	}
	ports := append(append([]uint32{}, hv1Ports...), flow.PortLocal)

	defer func(old int) { groupBits = old }(groupBits)
	for _, bits := range []int{maxGroupBits, 0} {
		groupBits = bits
		st := state(t, newScenario().input("hv1"), true)
		ctx := t.Context()
		actual, err := ofsw.Dump(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := ofsw.Apply(ctx, reconcile.Diff(st, actual, true)); err != nil {
			t.Fatalf("OVS refused the flows (%d group bits): %v", bits, err)
		}
		if got, err := ofsw.Dump(ctx); err != nil {
			t.Fatal(err)
		} else if ops := reconcile.Diff(st, got, true); !ops.Empty() {
			t.Fatalf("OVS holds something else than we sent:\n%s", ops.Text())
		}
		conj := 0
		for _, f := range st.Flows {
			if strings.Contains(f.InstructionsString(), "conjunction(") {
				conj++
			}
		}
		var table strings.Builder
		agreed := 0
		cases := ovsCases()
		for _, c := range cases {
			n := 0
			fake := fakeswitch.FromState(st, ports...)
			fake.Conntrack = fakeswitch.ConntrackFunc(func(p fakeswitch.Packet, _ uint16, _ bool) (uint32, uint32) {
				n++
				if n <= len(c.ct) {
					return c.ct[n-1], 0
				}
				return flow.CTNew, 0
			})
			r, err := fake.Walk(c.in, c.pkt)
			if err != nil {
				t.Errorf("%s: fake switch: %v", c.name, err)
				continue
			}
			want := r.Verdict(x.Tunnels)
			in := c.pkt.Clone()
			in.InPort = c.in
			args := []string{"ofproto/trace", br.Name, in.String()}
			for _, s := range c.ct {
				args = append(args, "--ct-next", ctFlags(s|flow.CTTracked))
			}
			tr := sh(t, "ovs-appctl", args...)
			got, err := x.Trace(tr, in)
			if err != nil {
				t.Errorf("%s: replaying the trace: %v\n%s", c.name, err, tr)
				continue
			}
			if got == want {
				agreed++
				fmt.Fprintf(&table, "%-58s | agree | %.60s\n", c.name, want)
			} else {
				fmt.Fprintf(&table, "%-58s | DIFFER | fake: %s\n%-58s |        | OVS:  %s\n", c.name, want, "", got)
				t.Errorf("%s: the fake switch and OVS disagree\nfake: %s\nOVS:  %s\nfake trace:\n%s\nOVS trace:\n%s", c.name, want, got, r.TraceText(), tr)
			}
		}
		t.Logf("%d group bits, %d flows (%d conjunctive): fake switch vs ofproto/trace, %d of %d packets agree:\n%s",
			bits, len(st.Flows), conj, agreed, len(cases), table.String())

		// The comparison can fail: a model without the conj_id flows drops
		// what OVS lets through.
		broken := flow.NewState()
		for k, f := range st.Flows {
			if _, ok := f.Match.Get(flow.ConjID); !ok {
				broken.Flows[k] = f
			}
		}
		broken.Groups, broken.Meters = st.Groups, st.Meters
		c := cases[0]
		r, err := fakeswitch.FromState(broken, ports...).Walk(c.in, c.pkt)
		if err != nil {
			t.Fatal(err)
		}
		in := c.pkt.Clone()
		in.InPort = c.in
		got, err := x.Trace(sh(t, "ovs-appctl", "ofproto/trace", br.Name, in.String()), in)
		if err != nil {
			t.Fatal(err)
		}
		if want := r.Verdict(x.Tunnels); got == want {
			t.Fatalf("a model without conj_id flows agrees with OVS on %q: %s", c.name, got)
		}
	}
}

// ctFlags prints ct_state bits as ofproto/trace's --ct-next wants them.
func ctFlags(s uint32) string {
	var out []string
	for i, n := range []string{"new", "est", "rel", "rpl", "inv", "trk"} {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}
