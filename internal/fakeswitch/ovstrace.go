package fakeswitch

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/nimbus-sdn/nimbus/flow"
)

// This file turns real OVS's answer into the fake switch's terms, so e2e
// tests can show that both agree: `ovs-appctl ofproto/trace` ends each
// pass with "Datapath actions: ...", which Replay executes on the input
// packet to get OVS's verdict in the form Result.Verdict prints.

// Verdict is the result in a canonical, order-independent text: one item
// per emit, sorted, "drop" for none. An output is "output:N [wire
// headers]" (with " tun_id=0x.." for the ports in tunnels, since only a
// tunnel carries it); a punt is "controller(reason=..,cookie=0x..)".
func (r *Result) Verdict(tunnels map[uint32]bool) string {
	var out []string
	for _, e := range r.Emits {
		out = append(out, emitText(e.Punt(), e.Port, e.Packet, e.Reason, e.Cookie, tunnels))
	}
	return joinVerdict(out)
}

func emitText(punt bool, port uint32, p Packet, reason Reason, cookie uint64, tunnels map[uint32]bool) string {
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

// ParseDpifShow reads `ovs-appctl dpif/show`: per bridge, datapath port
// number to OpenFlow port number (65534 is flow.PortLocal).
func ParseDpifShow(out string) map[string]map[int]uint32 {
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

// Replay executes OVS datapath actions on a packet.
type Replay struct {
	// ODP maps the bridge's datapath ports to OpenFlow ports.
	ODP map[int]uint32
	// Underlay are the datapath ports that carry tunnelled frames: an
	// output there after tnl_push(tnl_port(T),...key=K...) is an output
	// of the inner frame to tunnel port T with tun_id K.
	Underlay map[int]bool
	// Tunnels are the OpenFlow ports whose emits show tun_id.
	Tunnels map[uint32]bool
}

type replayState struct {
	pkt    Packet
	tunnel *tunnelOut
}

type tunnelOut struct {
	port uint32
	key  uint64
}

// Trace replays every "Datapath actions:" line of an ofproto/trace
// output: the first on the input packet, each later one (a ct()
// recirculation) on the packet as it was at the matching recirc().
func (x *Replay) Trace(trace string, in Packet) (string, error) {
	var lines []string
	for _, l := range strings.Split(trace, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Datapath actions: "); ok {
			lines = append(lines, strings.TrimSpace(v))
		}
	}
	if len(lines) == 0 {
		return "", fmt.Errorf("fakeswitch: no Datapath actions in the trace")
	}
	var out []string
	queue := []Packet{in.Clone()}
	for _, l := range lines {
		if len(queue) == 0 {
			return "", fmt.Errorf("fakeswitch: a datapath pass with no recirc() before it: %s", l)
		}
		p := queue[0]
		queue = queue[1:]
		if err := x.run(l, replayState{pkt: p}, &out, &queue); err != nil {
			return "", err
		}
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

// inner returns what is inside name(...) when s is exactly that.
func inner(s, name string) (string, bool) {
	if !strings.HasPrefix(s, name+"(") || !strings.HasSuffix(s, ")") {
		return "", false
	}
	return s[len(name)+1 : len(s)-1], true
}

var fullMaskRE = regexp.MustCompile(`^(0x)?f+$|^(ff:){5}ff$|^255\.255\.255\.255$`)

// kv parses "a=1,b=2". A value with an all-ones /mask keeps the value;
// masked reports a partial mask (a rewrite of some bits only, which
// setHeader refuses to guess about).
func kv(s string) (m map[string]string, masked bool) {
	m = map[string]string{}
	for _, p := range splitTop(s) {
		k, v, _ := strings.Cut(p, "=")
		if val, mask, ok := strings.Cut(v, "/"); ok {
			v = val
			if !fullMaskRE.MatchString(mask) {
				masked = true
			}
		}
		m[k] = v
	}
	return m, masked
}

var keyRE = regexp.MustCompile(`key=(0x[0-9a-f]+)`)

func (x *Replay) run(actions string, st replayState, out *[]string, recircs *[]Packet) error {
	p := &st.pkt
	for _, a := range splitTop(actions) {
		if n, err := strconv.Atoi(a); err == nil {
			switch {
			case st.tunnel != nil && x.Underlay[n]:
				q := p.Clone()
				q.TunnelID = st.tunnel.key
				*out = append(*out, emitText(false, st.tunnel.port, q, 0, 0, x.Tunnels))
			case x.ODP[n] != 0:
				*out = append(*out, emitText(false, x.ODP[n], *p, 0, 0, x.Tunnels))
			default:
				return fmt.Errorf("fakeswitch: output to unknown datapath port %d", n)
			}
			continue
		}
		switch {
		case a == "drop" || strings.HasPrefix(a, "meter("):
			continue
		case a == "pop_vlan":
			if len(p.VLANs) == 0 {
				return fmt.Errorf("fakeswitch: pop_vlan on an untagged frame")
			}
			p.VLANs = p.VLANs[1:]
			continue
		case strings.HasPrefix(a, "ct("):
			// The datapath's conntrack: the recirculated pass carries the
			// state (ofproto/trace's --ct-next, +trk+new by default).
			continue
		case strings.HasPrefix(a, "recirc("):
			*recircs = append(*recircs, p.Clone())
			continue
		}
		if in, ok := inner(a, "clone"); ok {
			if err := x.run(in, replayState{pkt: p.Clone(), tunnel: st.tunnel}, out, recircs); err != nil {
				return err
			}
			continue
		}
		if in, ok := inner(a, "push_vlan"); ok {
			m, _ := kv(in)
			vid, _ := strconv.Atoi(m["vid"])
			pcp, _ := strconv.Atoi(m["pcp"])
			tpid := uint64(flow.EthTypeVLAN)
			if s, ok := m["tpid"]; ok {
				tpid, _ = strconv.ParseUint(s, 0, 16)
			}
			p.VLANs = append([]VLAN{{TPID: uint16(tpid), VID: uint16(vid), PCP: uint8(pcp)}}, p.VLANs...)
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
				return fmt.Errorf("fakeswitch: userspace action without controller(): %s", a)
			}
			m, _ := kv(ctl)
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
					port = x.ODP[n]
				}
			}
			km := keyRE.FindStringSubmatch(in)
			if port == 0 || km == nil {
				return fmt.Errorf("fakeswitch: cannot read %s", a)
			}
			key, _ := strconv.ParseUint(km[1], 0, 64)
			st.tunnel = &tunnelOut{port, key}
			continue
		}
		if in, ok := inner(a, "set"); ok {
			if err := setHeader(p, in); err != nil {
				return err
			}
			continue
		}
		return fmt.Errorf("fakeswitch: datapath action %q not understood", a)
	}
	return nil
}

// ofp13Reason maps OVS's internal packet-in reason to OpenFlow 1.3's:
// the table-miss reasons (0, implicit miss 6, explicit miss 7) are
// no_match; an output in an action set (3), a group (4) or a packet-out
// (5) is action.
func ofp13Reason(r int) Reason {
	switch r {
	case 0, 6, 7:
		return ReasonNoMatch
	case 2:
		return ReasonInvalidTTL
	}
	return ReasonAction
}

func setHeader(p *Packet, s string) error {
	for _, h := range []string{"eth", "arp", "ipv4", "udp", "tcp", "tunnel"} {
		in, ok := inner(s, h)
		if !ok {
			continue
		}
		m, masked := kv(in)
		if masked && h != "tunnel" {
			return fmt.Errorf("fakeswitch: masked datapath set(%s) not replayed", s)
		}
		for k, v := range m {
			var err error
			mac := func() flow.MAC { var x flow.MAC; x, err = flow.ParseMAC(v); return x }
			ip := func() flow.IPv4 { var x flow.IPv4; x, err = flow.ParseIPv4(v); return x }
			num := func() uint64 { var x uint64; x, err = strconv.ParseUint(v, 0, 64); return x }
			switch h + "." + k {
			case "eth.src":
				p.EthSrc = mac()
			case "eth.dst":
				p.EthDst = mac()
			case "arp.sip":
				p.ARPSpa = ip()
			case "arp.tip":
				p.ARPTpa = ip()
			case "arp.op":
				p.ARPOp = uint16(num())
			case "arp.sha":
				p.ARPSha = mac()
			case "arp.tha":
				p.ARPTha = mac()
			case "ipv4.src":
				p.IPv4Src = ip()
			case "ipv4.dst":
				p.IPv4Dst = ip()
			case "ipv4.proto":
				p.IPProto = uint8(num())
			case "ipv4.ttl":
				p.TTL = uint8(num())
			case "ipv4.tos":
				p.IPDSCP = uint8(num()) >> 2
			case "ipv4.frag":
			case "udp.src", "tcp.src":
				p.TPSrc = uint16(num())
			case "udp.dst", "tcp.dst":
				p.TPDst = uint16(num())
			case "tunnel.tun_id":
				p.TunnelID = num()
			default:
				if h != "tunnel" {
					return fmt.Errorf("fakeswitch: set(%s): field %s not understood", s, k)
				}
			}
			if err != nil {
				return fmt.Errorf("fakeswitch: set(%s): %w", s, err)
			}
		}
		return nil
	}
	return fmt.Errorf("fakeswitch: set(%s) not understood", s)
}
