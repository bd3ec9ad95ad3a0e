package node

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
)

// Only ESTABLISHED TCP entries whose original destination is a VIP's
// address and port, in the VIP network's lb zone, count for that VIP:
// not one closing, not the security groups' zone's copy, not another
// port, zone or protocol; DSR's entries (a ct_mark, no NAT) count too.
func TestCountVIPConns(t *testing.T) {
	snap := model.NewSnapshot(1, nil)
	snap = snap.With(1, model.KindNetwork, "n1", &model.Network{Base: model.Base{ID: "n1"}, NetworkType: model.NetGRE, SegmentationID: 100})
	snap = snap.With(1, model.KindSubnet, "s1", &model.Subnet{Base: model.Base{ID: "s1"}, NetworkID: "n1", CIDR: "10.0.0.0/24"})
	snap = snap.With(1, model.KindVIP, "vip-a", &model.LBVIP{Base: model.Base{ID: "vip-a"}, SubnetID: "s1", Address: "10.0.0.100", ProtocolPort: 80})
	snap = snap.With(1, model.KindVIP, "vip-b", &model.LBVIP{Base: model.Base{ID: "vip-b"}, SubnetID: "s1", Address: "10.0.0.101", ProtocolPort: 80})
	snap = snap.With(1, model.KindVIP, "vip-x", &model.LBVIP{Base: model.Base{ID: "vip-x"}, SubnetID: "gone", Address: "10.0.0.102", ProtocolPort: 80})
	vips := vipKeys(snap)
	lb, sg := pipeline.ZoneLB(100), pipeline.ZoneSG(100)
	if len(vips) != 2 || vips[vipKey{lb, "10.0.0.100", 80}] != "vip-a" {
		t.Fatalf("vip keys %v (zone %d)", vips, lb)
	}
	line := func(dst string, dport, zone int, rest string) string {
		return "tcp,orig=(src=10.0.0.11,dst=" + dst + ",sport=40000,dport=" + itoa(dport) + "),reply=(src=10.0.0.21,dst=10.0.0.11,sport=8080,dport=40000),zone=" + itoa(zone) + rest
	}
	dump := line("10.0.0.100", 80, int(lb), ",protoinfo=(state=ESTABLISHED)") + "\n" +
		line("10.0.0.100", 80, int(lb), ",protoinfo=(state=ESTABLISHED)") + "\n" +
		line("10.0.0.100", 80, int(lb), ",protoinfo=(state=TIME_WAIT)") + "\n" +
		line("10.0.0.100", 80, int(sg), ",protoinfo=(state=ESTABLISHED)") + "\n" +
		line("10.0.0.100", 8080, int(lb), ",protoinfo=(state=ESTABLISHED)") + "\n" +
		line("10.0.0.101", 80, int(lb), ",mark=7,protoinfo=(state=ESTABLISHED)") + "\n" +
		"udp,orig=(src=10.0.0.11,dst=10.0.0.100,sport=53,dport=80),reply=(src=10.0.0.100,dst=10.0.0.11,sport=80,dport=53),zone=" + itoa(int(lb)) + "\n" +
		"tcp,orig=(src=10.0.0.11,dst=10.0.0.100,sport=1,dport=80),reply=(src=10.0.0.100,dst=10.0.0.11,sport=80,dport=1),protoinfo=(state=ESTABLISHED)\n" +
		"tcp,orig=(garbage\n\n"
	count, got := vipConnCounter(vips)
	if err := eachLine(strings.NewReader(dump), count); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"vip-a": 2, "vip-b": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("counted %v, want %v", got, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// snatTo picks the entries whose reply goes to the external IP,
// whatever the protocol or state, in the dump format vipConnCounter reads.
func TestCountSNAT(t *testing.T) {
	dump := "tcp,orig=(src=10.0.0.5,dst=8.8.8.8,sport=40000,dport=53),reply=(src=8.8.8.8,dst=203.0.113.5,sport=53,dport=1030),zone=40000,protoinfo=(state=ESTABLISHED)\n" +
		"udp,orig=(src=10.0.0.6,dst=8.8.8.8,sport=5000,dport=53),reply=(src=8.8.8.8,dst=203.0.113.5,sport=53,dport=1031),zone=40000\n" +
		"icmp,orig=(src=10.0.0.6,dst=8.8.8.8,id=1,type=8,code=0),reply=(src=8.8.8.8,dst=203.0.113.50,id=1,type=0,code=0),zone=40000\n" +
		"tcp,orig=(src=10.0.0.7,dst=203.0.113.5,sport=1,dport=2),reply=(src=203.0.113.5,dst=10.0.0.7,sport=2,dport=1),zone=40000\n" +
		"garbage\n"
	n := 0
	if err := eachLine(strings.NewReader(dump), func(l string) {
		if snatTo(l, "203.0.113.5") {
			n++
		}
	}); err != nil || n != 2 {
		t.Fatalf("counted %d entries SNATed to 203.0.113.5 (%v), want 2", n, err)
	}
}

// eachLine hands over every line, the last one without its newline too,
// and skips a line longer than maxDumpLine without losing the next one;
// lbZones dumps each VIP network's lb zone, or every zone at once past
// maxZoneDumps networks.
func TestEachLineAndZones(t *testing.T) {
	long := strings.Repeat("x", 3*maxDumpLine)
	var got []string
	if err := eachLine(strings.NewReader("a\n"+long+"\nb\n\nc"), func(l string) { got = append(got, l) }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "", "c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	vips := map[vipKey]string{{7, "10.0.0.1", 80}: "a", {7, "10.0.0.2", 80}: "b", {3, "10.1.0.1", 80}: "c"}
	if z := lbZones(vips); !reflect.DeepEqual(z, []uint16{3, 7}) {
		t.Fatalf("zones %v, want [3 7]", z)
	}
	for i := range maxZoneDumps {
		vips[vipKey{uint16(100 + i), "10.2.0.1", 80}] = "x"
	}
	if z := lbZones(vips); !reflect.DeepEqual(z, []uint16{0}) {
		t.Fatalf("zones %v past %d networks, want [0] (one dump)", z, maxZoneDumps)
	}
}
