package fakeswitch

import (
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Datapath action lines as OVS 3.1's ofproto/trace printed them.
func TestReplay(t *testing.T) {
	x := &Replay{ODP: map[int]uint32{1: flow.PortLocal, 2: 1, 3: 10, 4: 2, 6: 20}, Underlay: map[int]bool{5: true}, Tunnels: map[uint32]bool{10: true}}
	arp := Packet{InPort: 1, EthSrc: macA, EthDst: bcast, EthType: flow.EthTypeARP, ARPOp: 1, ARPSha: macA,
		ARPSpa: flow.MustIPv4("10.0.0.1"), ARPTpa: flow.MustIPv4("10.0.0.2")}
	cases := []struct {
		name, trace string
		in          Packet
		want        string
	}{
		{"ARP reply", "Datapath actions: set(eth(src=02:00:00:00:00:0b,dst=02:00:00:00:00:0a)),set(arp(sip=10.0.0.2,tip=10.0.0.1,op=2,sha=02:00:00:00:00:0b,tha=02:00:00:00:00:0a)),2", arp,
			"output:1 [dl_src=02:00:00:00:00:0b,dl_dst=02:00:00:00:00:0a,dl_type=0x0806,arp_op=2,arp_spa=10.0.0.2,arp_tpa=10.0.0.1,arp_sha=02:00:00:00:00:0b,arp_tha=02:00:00:00:00:0a]"},
		{"tunnel in a clone and a plain output", "Datapath actions: clone(tnl_push(tnl_port(3),header(size=42,type=3,eth(dst=02:00:00:00:77:02,src=fa:b8:9e:f8:2f:4c,dl_type=0x0800),ipv4(src=198.18.77.1,dst=198.18.77.2,proto=47,tos=0,ttl=64,frag=0x4000),gre((flags=0x2000,proto=0x6558),key=0x64)),out_port(2)),5),push_vlan(vid=200,pcp=0),6", ipPkt(),
			"output:10 tun_id=0x64 [" + ipPkt().WireString() + "] ; output:20 [" + tagged200().WireString() + "]"},
		{"DHCP punt behind a meter", "Datapath actions: meter(0),userspace(pid=0,controller(reason=1,dont_send=1,continuation=0,recirc_id=238,rule_cookie=0x4e033a1e34a52aea,controller_id=0,max_len=65535))", ipPkt(),
			"controller(reason=action,cookie=0x4e033a1e34a52aea)"},
		{"drop", "Final flow: unchanged\nDatapath actions: drop", ipPkt(), "drop"},
		{"ct recirculation: second pass from the recirc point", "Datapath actions: ct(commit,zone=5),recirc(0x1),set(eth(dst=ff:ff:ff:ff:ff:ff)),4\n...\nDatapath actions: 2", ipPkt(),
			"output:1 [" + ipPkt().WireString() + "] ; output:2 [" + strings.Replace(ipPkt().WireString(), "dl_dst=02:00:00:00:00:0b", "dl_dst=ff:ff:ff:ff:ff:ff", 1) + "]"},
	}
	for _, c := range cases {
		got, err := x.Trace(c.trace, c.in)
		if err != nil || got != c.want {
			t.Errorf("%s:\n got %s (%v)\nwant %s", c.name, got, err, c.want)
		}
	}
	for _, bad := range []string{"Datapath actions: 99", "Datapath actions: sample(1)", "Datapath actions: set(eth(dst=02:00:00:00:00:01/ff:ff:ff:00:00:00)),2", "no actions"} {
		if got, err := x.Trace(bad, ipPkt()); err == nil {
			t.Errorf("%q replayed as %s", bad, got)
		}
	}
}

func tagged200() Packet {
	p := ipPkt()
	p.VLANs = []VLAN{{TPID: flow.EthTypeVLAN, VID: 200}}
	return p
}

func TestParseDpifShow(t *testing.T) {
	out := `netdev@ovs-netdev: hit:0 missed:0
  nbfsu1:
    nbfsu1 65534/2: (tap)
    u1 1/5: (tap)
  nbfsx1:
    g10 10/3: (gre: key=flow, remote_ip=198.18.77.2)
    nbfsx1 65534/1: (tap)
    p1 1/4: (tap)
`
	got := ParseDpifShow(out)
	if got["nbfsu1"][5] != 1 || got["nbfsx1"][3] != 10 || got["nbfsx1"][1] != flow.PortLocal || len(got["nbfsx1"]) != 3 {
		t.Fatalf("%v", got)
	}
}
