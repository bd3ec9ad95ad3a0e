package isolation

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/fakeswitch"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/ofproto"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

type walkCapture struct{ conns chan *ofproto.Conn }

func (c *walkCapture) OnConnect(conn *ofproto.Conn) ofproto.Handler { c.conns <- conn; return nil }
func (c *walkCapture) OnDisconnect(*ofproto.Conn, error)            {}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestWalkAgreesWithOVS is the fake switch's oracle test: hv1's isolation
// flows, groups and meters (with a3) go into a real OVS bridge through our
// own codec, and every packet of walkCases goes both through the fake
// switch and through `ovs-appctl ofproto/trace`. The trace's "Datapath
// actions:" are replayed on the input packet (set(eth|arp|ipv4|udp|tcp),
// push_vlan, pop_vlan, clone, tnl_push, outputs, controller userspace
// actions) to get OVS's verdict: each output port with the frame as it
// leaves (and the GRE key for the tunnel), each punt with its reason and
// cookie. Both verdicts must be equal for every packet.
//
// The GRE port needs a route for OVS's native tunnelling, so an underlay
// bridge owned by the test carries a /30 from 198.18.0.0/15 (the
// benchmarking range) on its own internal device, with a static neighbour
// for the remote end; its only flow forwards GRE from LOCAL to its port 1.
// A frame sent into the tunnel shows as tnl_push(...key=K...) followed by
// an output to that port. No packet is sent: ofproto/trace only.
func TestWalkAgreesWithOVS(t *testing.T) {
	ovslab.RequireE2E(t)
	sess := &walkCapture{conns: make(chan *ofproto.Conn, 4)}
	srv := &ofproto.Server{Addr: "127.0.0.1:0", Session: sess,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	addr, err := srv.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// Underlay with a free /30 for the tunnel.
	under := ovslab.NewBridge(t, ovslab.BridgeOptions{})
	under.AddPort("", 1)
	var b [2]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	net := fmt.Sprintf("198.%d.%d.", 18+int(b[0]&1), b[1]&^3)
	local, remote := net+strconv.Itoa(int(b[1]&^3)+1), net+strconv.Itoa(int(b[1]&^3)+2)
	if strings.Contains(sh(t, "ip", "-4", "addr"), net) {
		t.Skipf("%s0/24 is in use on this machine", net)
	}
	sh(t, "ip", "link", "set", "dev", under.Name, "up")
	sh(t, "ip", "addr", "add", local+"/30", "dev", under.Name)
	under.AddFlow("table=0,priority=1,in_port=LOCAL,ip,nw_proto=47,actions=output:1")
	ovslab.WaitFor(t, 10*time.Second, "OVS learns the underlay route", func() bool {
		return strings.Contains(sh(t, "ovs-appctl", "ovs/route/show"), "dev "+under.Name)
	})
	sh(t, "ovs-appctl", "tnl/neigh/set", under.Name, remote, "02:00:00:00:00:fe")

	br := ovslab.NewBridge(t, ovslab.BridgeOptions{Controllers: []string{"tcp:" + addr.String()}})
	var conn *ofproto.Conn
	select {
	case conn = <-sess.conns:
	case <-time.After(15 * time.Second):
		t.Fatal("bridge never connected")
	}
	for _, n := range []int{1, 2, 3, portA3, 20} {
		br.AddPort("", n)
	}
	br.AddPortType("", 10, "gre", map[string]string{"remote_ip": remote, "key": "flow"})

	st := walkState(t)
	ofsw := &reconcile.OFSwitch{Conn: conn}
	actx, acancel := context.WithTimeout(ctx, 20*time.Second)
	defer acancel()
	if err := ofsw.Apply(actx, reconcile.Diff(st, reconcile.NewActual(), true)); err != nil {
		t.Fatalf("OVS refused the isolation flows: %v", err)
	}
	if got, err := ofsw.Dump(actx); err != nil {
		t.Fatal(err)
	} else if ops := reconcile.Diff(st, got, true); !ops.Empty() {
		t.Fatalf("OVS holds something else than we sent:\n%s", ops.Text())
	}

	dp := dpifPorts(t)
	x := &dpReplay{odp: dp[br.Name], tunnelPorts: map[uint32]bool{10: true}, underlay: map[int]bool{}}
	for odp, of := range dp[under.Name] {
		if of == 1 {
			x.underlay[odp] = true
		}
	}
	if len(x.odp) != len(hv1Ports) || len(x.underlay) != 1 {
		t.Fatalf("datapath ports: bridge %v, underlay %v", dp[br.Name], dp[under.Name])
	}

	fake := fakeswitch.FromState(st, hv1Ports...)
	var table strings.Builder
	fmt.Fprintf(&table, "%-70s | %-5s | %s\n", "packet", "agree", "verdict (fake = OVS)")
	agreed := 0
	cases := walkCases()
	for _, c := range cases {
		r, err := fake.Walk(c.in, c.pkt)
		if err != nil {
			t.Errorf("%s: fake switch: %v", c.name, err)
			continue
		}
		want := fakeVerdict(r, x.tunnelPorts)
		in := c.pkt.Clone()
		in.InPort = c.in
		tr := br.Trace(in.String())
		acts := ovslab.DatapathActions(tr)
		got, err := x.verdict(acts, in)
		if err != nil {
			t.Errorf("%s: replaying %q: %v\n%s", c.name, acts, err, tr)
			continue
		}
		ok := got == want
		if ok {
			agreed++
			fmt.Fprintf(&table, "%-70s | %-5v | %s\n", c.name, ok, want)
		} else {
			fmt.Fprintf(&table, "%-70s | %-5v | fake: %s\n%-70s | %-5s | OVS:  %s\n", c.name, ok, want, "", "", got)
			t.Errorf("%s: the fake switch and OVS disagree\nfake: %s\nOVS:  %s\nfake trace:\n%s\nOVS trace:\n%s", c.name, want, got, r.TraceText(), tr)
		}
	}
	t.Logf("fake switch vs ofproto/trace, %d of %d packets agree:\n%s", agreed, len(cases), table.String())
	if len(cases) < 10 {
		t.Fatalf("only %d packets", len(cases))
	}

	// The comparison can fail: a model without the ARP responder's
	// flows (every flow that answers out of IN_PORT) floods the request
	// instead, and must disagree with OVS on it.
	broken := flow.NewState()
	for k, f := range st.Flows {
		if !strings.Contains(f.InstructionsString(), "IN_PORT") {
			broken.Flows[k] = f
		}
	}
	broken.Groups, broken.Meters = st.Groups, st.Meters
	arp := arpRequest(macA1, "10.0.0.11", "10.0.0.12")
	r, err := fakeswitch.FromState(broken, hv1Ports...).Walk(1, arp)
	if err != nil {
		t.Fatal(err)
	}
	arp.InPort = 1
	got, err := x.verdict(ovslab.DatapathActions(br.Trace(arp.String())), arp)
	if err != nil {
		t.Fatal(err)
	}
	if want := fakeVerdict(r, x.tunnelPorts); got == want {
		t.Fatalf("a model without the ARP responder agrees with OVS: %s", got)
	}
}

// fakeVerdict is the fake switch's verdict in the form dpReplay gives.
func fakeVerdict(r *fakeswitch.Result, tunnels map[uint32]bool) string {
	var out []string
	for _, e := range r.Emits {
		out = append(out, emitText(e.Punt(), e.Port, e.Packet, e.Reason, e.Cookie, tunnels))
	}
	return joinVerdict(out)
}

func emitText(punt bool, port uint32, p fakeswitch.Packet, reason fakeswitch.Reason, cookie uint64, tunnels map[uint32]bool) string {
	if punt {
		return fmt.Sprintf("controller(reason=%s,cookie=0x%x)", reason, cookie)
	}
	s := fmt.Sprintf("output:%s", flow.PortString(port))
	if tunnels[port] {
		s += fmt.Sprintf(" tun_id=0x%x", p.TunnelID)
	}
	return s + " [" + p.WireString() + "]"
}

func joinVerdict(out []string) string {
	if len(out) == 0 {
		return "drop"
	}
	sort.Strings(out)
	return strings.Join(out, " ; ")
}

// dpifPorts reads `ovs-appctl dpif/show`: per bridge, datapath port
// number to OpenFlow port number.
func dpifPorts(t *testing.T) map[string]map[int]uint32 {
	t.Helper()
	out := sh(t, "ovs-appctl", "dpif/show")
	res := map[string]map[int]uint32{}
	var cur map[int]uint32
	re := regexp.MustCompile(`^\s{4}\S+ (\d+)/(\d+):`)
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "    ") && strings.HasSuffix(l, ":") {
			cur = map[int]uint32{}
			res[strings.TrimSuffix(strings.TrimSpace(l), ":")] = cur
			continue
		}
		if m := re.FindStringSubmatch(l); m != nil && cur != nil {
			of, _ := strconv.ParseUint(m[1], 10, 32)
			odp, _ := strconv.Atoi(m[2])
			if of == 65534 {
				of = uint64(flow.PortLocal)
			}
			cur[odp] = uint32(of)
		}
	}
	return res
}

// dpReplay turns OVS datapath actions into a verdict.
type dpReplay struct {
	odp         map[int]uint32 // the bridge's datapath ports -> OpenFlow ports
	underlay    map[int]bool   // the underlay's port that carries tunnelled frames
	tunnelPorts map[uint32]bool
}

type dpState struct {
	pkt    fakeswitch.Packet
	tunnel *struct {
		port uint32
		key  uint64
	}
}

func (x *dpReplay) verdict(actions string, in fakeswitch.Packet) (string, error) {
	if actions == "" {
		return "", fmt.Errorf("no Datapath actions line")
	}
	var out []string
	if err := x.run(actions, dpState{pkt: in.Clone()}, &out); err != nil {
		return "", err
	}
	return joinVerdict(out), nil
}

// splitTop splits on commas outside parentheses.
func splitTop(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if rest := strings.TrimSpace(s[start:]); rest != "" {
		parts = append(parts, rest)
	}
	return parts
}

// inner returns what is inside name(...) at the start of s.
func inner(s, name string) (string, bool) {
	if !strings.HasPrefix(s, name+"(") || !strings.HasSuffix(s, ")") {
		return "", false
	}
	return s[len(name)+1 : len(s)-1], true
}

// kv parses "a=1,b=2" (values with a /mask keep the value only: OVS
// prints masks only for partial sets, which none of these flows make).
func kv(s string) map[string]string {
	m := map[string]string{}
	for _, p := range splitTop(s) {
		k, v, _ := strings.Cut(p, "=")
		v, _, _ = strings.Cut(v, "/")
		m[k] = v
	}
	return m
}

func (x *dpReplay) run(actions string, st dpState, out *[]string) error {
	p := &st.pkt
	for _, a := range splitTop(actions) {
		if n, err := strconv.Atoi(a); err == nil {
			switch {
			case st.tunnel != nil && x.underlay[n]:
				q := p.Clone()
				q.TunnelID = st.tunnel.key
				*out = append(*out, emitText(false, st.tunnel.port, q, 0, 0, x.tunnelPorts))
			case x.odp[n] != 0:
				*out = append(*out, emitText(false, x.odp[n], *p, 0, 0, x.tunnelPorts))
			default:
				return fmt.Errorf("output to unknown datapath port %d", n)
			}
			continue
		}
		if a == "drop" || strings.HasPrefix(a, "meter(") {
			continue
		}
		if a == "pop_vlan" {
			if len(p.VLANs) == 0 {
				return fmt.Errorf("pop_vlan on an untagged frame")
			}
			p.VLANs = p.VLANs[1:]
			continue
		}
		if in, ok := inner(a, "clone"); ok {
			cp := dpState{pkt: p.Clone(), tunnel: st.tunnel}
			if err := x.run(in, cp, out); err != nil {
				return err
			}
			continue
		}
		if in, ok := inner(a, "push_vlan"); ok {
			m := kv(in)
			vid, _ := strconv.Atoi(m["vid"])
			pcp, _ := strconv.Atoi(m["pcp"])
			tpid := uint64(flow.EthTypeVLAN)
			if s, ok := m["tpid"]; ok {
				tpid, _ = strconv.ParseUint(s, 0, 16)
			}
			p.VLANs = append([]fakeswitch.VLAN{{TPID: uint16(tpid), VID: uint16(vid), PCP: uint8(pcp)}}, p.VLANs...)
			continue
		}
		if in, ok := inner(a, "userspace"); ok {
			var ctl string
			for _, part := range splitTop(in) {
				if c, ok := inner(part, "controller"); ok {
					ctl = c
				}
			}
			if ctl == "" {
				return fmt.Errorf("userspace action without controller(): %s", a)
			}
			m := kv(ctl)
			r, _ := strconv.Atoi(m["reason"])
			cookie, _ := strconv.ParseUint(m["rule_cookie"], 0, 64)
			*out = append(*out, emitText(true, flow.PortController, *p, ofp13Reason(r), cookie, nil))
			continue
		}
		if in, ok := inner(a, "tnl_push"); ok {
			var port uint32
			for _, part := range splitTop(in) {
				if s, ok := inner(part, "tnl_port"); ok {
					n, _ := strconv.Atoi(s)
					port = x.odp[n]
				}
			}
			km := regexp.MustCompile(`key=(0x[0-9a-f]+)`).FindStringSubmatch(in)
			if port == 0 || km == nil {
				return fmt.Errorf("cannot read %s", a)
			}
			key, _ := strconv.ParseUint(km[1], 0, 64)
			st.tunnel = &struct {
				port uint32
				key  uint64
			}{port, key}
			continue
		}
		if in, ok := inner(a, "set"); ok {
			if err := setHeader(p, in); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("datapath action %q not understood", a)
	}
	return nil
}

// ofp13Reason maps OVS's internal packet-in reason to OpenFlow 1.3's:
// the table-miss reasons (implicit and explicit miss) are no_match; an
// output in an action set, a group or a packet-out is action.
func ofp13Reason(r int) fakeswitch.Reason {
	switch r {
	case 0, 6, 7:
		return fakeswitch.ReasonNoMatch
	case 2:
		return fakeswitch.ReasonInvalidTTL
	}
	return fakeswitch.ReasonAction
}

func setHeader(p *fakeswitch.Packet, s string) error {
	mac := func(v string) flow.MAC { return flow.MustMAC(v) }
	ip := func(v string) flow.IPv4 { return flow.MustIPv4(v) }
	num := func(v string) uint64 { n, _ := strconv.ParseUint(v, 0, 64); return n }
	for _, h := range []string{"eth", "arp", "ipv4", "udp", "tcp", "tunnel"} {
		in, ok := inner(s, h)
		if !ok {
			continue
		}
		for k, v := range kv(in) {
			switch h + "." + k {
			case "eth.src":
				p.EthSrc = mac(v)
			case "eth.dst":
				p.EthDst = mac(v)
			case "arp.sip":
				p.ARPSpa = ip(v)
			case "arp.tip":
				p.ARPTpa = ip(v)
			case "arp.op":
				p.ARPOp = uint16(num(v))
			case "arp.sha":
				p.ARPSha = mac(v)
			case "arp.tha":
				p.ARPTha = mac(v)
			case "ipv4.src":
				p.IPv4Src = ip(v)
			case "ipv4.dst":
				p.IPv4Dst = ip(v)
			case "ipv4.proto":
				p.IPProto = uint8(num(v))
			case "ipv4.ttl":
				p.TTL = uint8(num(v))
			case "ipv4.tos":
				p.IPDSCP = uint8(num(v)) >> 2
			case "ipv4.frag":
			case "udp.src", "tcp.src":
				p.TPSrc = uint16(num(v))
			case "udp.dst", "tcp.dst":
				p.TPDst = uint16(num(v))
			case "tunnel.tun_id":
				p.TunnelID = num(v)
			default:
				if h != "tunnel" {
					return fmt.Errorf("set(%s): field %s not understood", s, k)
				}
			}
		}
		return nil
	}
	return fmt.Errorf("set(%s) not understood", s)
}
