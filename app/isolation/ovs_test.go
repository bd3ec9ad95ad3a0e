package isolation

import (
	"context"
	"fmt"
	"github.com/nimbus-sdn/nimbus/switches"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/ofovs"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/reconcile"
)

// ovsApply connects a fresh bridge (ports 1-4, a GRE port 10 and port
// 20) to an in-test OpenFlow server and installs st through our own codec
// and bundle path, then checks that OVS holds exactly st.
func ovsApply(t *testing.T, st *flow.State) *ovslab.Bridge {
	t.Helper()
	ovslab.RequireE2E(t)
	br, conn := ofovs.Bridge(t)
	ctx := t.Context()
	for _, n := range []int{1, 2, 3, 4} {
		br.AddPort("", n)
	}
	br.AddPortType("", 10, "gre", map[string]string{"remote_ip": "127.0.0.77", "key": "flow"})
	br.AddPort("", 20)

	sw := &switches.OFSwitch{Conn: conn}
	actx, acancel := context.WithTimeout(ctx, 60*time.Second)
	defer acancel()
	if err := sw.Apply(actx, reconcile.Diff(st, reconcile.NewActual(), true)); err != nil {
		t.Fatalf("OVS refused the isolation flows: %v", err)
	}
	got, err := sw.Dump(actx)
	if err != nil {
		t.Fatal(err)
	}
	if ops := reconcile.Diff(st, got, true); !ops.Empty() {
		t.Fatalf("OVS holds something else than we sent:\n%s", ops.Text())
	}
	return br
}

// TestOVSTrace installs hv1's golden state on a real bridge through our
// own codec and bundle path (so OVS accepts every flow and group, group
// buckets that resubmit included), then asks ofproto/trace where packets
// go. Port numbers match the scenario; names are the bridge's own.
func TestOVSTrace(t *testing.T) {
	ovslab.RequireE2E(t)
	br := ovsApply(t, state(t, New(Config{}), newScenario().input("hv1")))

	a1, a2 := "dl_src=fa:16:3e:0a:00:01", "fa:16:3e:0a:00:02"
	cases := []struct {
		name, flow string
		want       []string // substrings of the trace
		not        []string
	}{
		{"a1 ARP for a2 is answered locally", "in_port=1,arp,arp_op=1," + a1 + ",dl_dst=ff:ff:ff:ff:ff:ff,arp_spa=10.0.0.11,arp_tpa=10.0.0.12,arp_sha=fa:16:3e:0a:00:01",
			[]string{"IN_PORT\n", "set_field:fa:16:3e:0a:00:02->arp_sha"}, []string{"group:"}},
		{"tenant B's 10.0.0.12 answers B's b1 with b2's MAC", "in_port=2,arp,arp_op=1,dl_src=fa:16:3e:0b:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_spa=10.0.0.11,arp_tpa=10.0.0.12",
			[]string{"set_field:fa:16:3e:0b:00:02->arp_sha"}, []string{"fa:16:3e:0a:00:02"}},
		{"a1 spoofing b1's MAC is dropped", "in_port=1,ip,dl_src=fa:16:3e:0b:00:01,nw_src=10.0.0.11,dl_dst=" + a2, nil, []string{"goto_table:2"}},
		{"a1 spoofing an IP is dropped", "in_port=1,ip," + a1 + ",nw_src=10.0.0.99,dl_dst=" + a2, nil, []string{"goto_table:2"}},
		{"a1 to a2 goes to hv2 with tun_id 100", "in_port=1,ip," + a1 + ",nw_src=10.0.0.11,nw_dst=10.0.0.12,dl_dst=" + a2,
			[]string{"set_field:0x64->tun_id", "output:10"}, nil},
		{"a1 broadcast floods to hv2 only on net-a", "in_port=1,ip," + a1 + ",nw_src=10.0.0.11,dl_dst=ff:ff:ff:ff:ff:ff",
			[]string{"group:1409286344", "set_field:0x64->tun_id"}, []string{"set_field:0x65->tun_id", "output:2\n", "push_vlan"}},
		{"tunnel key 101 to b1 reaches port 2", "in_port=10,tun_id=0x65,ip,dl_dst=fa:16:3e:0b:00:01", []string{"output:2"}, nil},
		{"tunnel broadcast is not sent back to tunnels", "in_port=10,tun_id=0x64,dl_dst=ff:ff:ff:ff:ff:ff", []string{"group:1409286345", "output:1"}, []string{"output:10"}},
		{"unknown tunnel key is dropped", "in_port=10,tun_id=0x99,dl_dst=fa:16:3e:0b:00:01", []string{"Datapath actions: drop"}, []string{"output:", "CONTROLLER"}},
		{"unknown VLAN on the uplink is dropped", "in_port=20,dl_vlan=300,dl_dst=fa:16:3e:0f:00:01", []string{"Datapath actions: drop"}, []string{"output:", "CONTROLLER"}},
		{"VLAN 200 from the uplink reaches v1 untagged", "in_port=20,dl_vlan=200,dl_dst=fa:16:3e:0f:00:01", []string{"pop_vlan", "output:3"}, nil},
		{"v1 to v2 leaves tagged on the uplink", "in_port=3,ip,dl_src=fa:16:3e:0f:00:01,nw_src=10.0.0.21,dl_dst=fa:16:3e:0f:00:02",
			[]string{"push_vlan:0x8100", "output:20"}, nil},
		{"a port no network covers is dropped: no learning fallback on a chassis", "in_port=4,ip,dl_src=fa:16:3e:44:44:44,dl_dst=ff:ff:ff:ff:ff:ff",
			[]string{"Datapath actions: drop"}, []string{"CONTROLLER", "FLOOD", "output:"}},
		{"DHCP discover goes to the controller", "udp,in_port=1," + a1 + ",nw_src=0.0.0.0,nw_dst=255.255.255.255,udp_src=68,udp_dst=67,dl_dst=ff:ff:ff:ff:ff:ff",
			[]string{"CONTROLLER:65535"}, nil},
	}
	for _, c := range cases {
		tr := br.Trace(c.flow)
		if os.Getenv("SHOW_TRACE") != "" {
			t.Logf("%s:\n%s", c.name, tr)
		}
		for _, w := range c.want {
			if !strings.Contains(tr, w) {
				t.Errorf("%s: trace lacks %q:\n%s", c.name, w, tr)
			}
		}
		for _, w := range c.not {
			if strings.Contains(tr, w) {
				t.Errorf("%s: trace has %q:\n%s", c.name, w, tr)
			}
		}
	}
}

// TestOVSFloodChain installs a network with 2,000 ports on hv1 (only the
// last, ofport 4, exists on the bridge: outputs to the others are no-ops)
// and traces a broadcast: OVS accepts the chained groups, and the flood
// walks the whole chain to the last port, which gets the frame.
func TestOVSFloodChain(t *testing.T) {
	ovslab.RequireE2E(t)
	s := newScenario()
	const n = 2000
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("e%07d-0000-4000-8000-000000000000", i)
		no := uint32(100 + i)
		if i == n-1 {
			no = 4
		}
		s.port(&model.Port{Base: model.Base{ID: id}, NetworkID: "net-a", MACAddress: fmt.Sprintf("fa:16:3e:e0:%02x:%02x", i>>8, i&0xff),
			FixedIPs: []model.FixedIP{{SubnetID: "sub-a", IPAddress: fmt.Sprintf("10.0.%d.%d", 1+i/250, 1+i%250)}}}, "hv1", no, "")
	}
	br := ovsApply(t, state(t, New(Config{}), s.input("hv1")))
	tr := br.Trace("in_port=1,ip,dl_src=fa:16:3e:0a:00:01,nw_src=10.0.0.11,dl_dst=ff:ff:ff:ff:ff:ff")
	for _, w := range []string{fmt.Sprintf("group:%d", chainGroupBase), fmt.Sprintf("set_field:%#x->reg3", 100+n-2), "set_field:0x4->reg3", "set_field:0x64->tun_id"} {
		if !strings.Contains(tr, w) {
			t.Errorf("trace lacks %q", w)
		}
	}
	if strings.Contains(tr, "resubmit") && strings.Contains(strings.ToLower(tr), "over max") || strings.Contains(tr, "too many resubmits") {
		t.Errorf("flood hit OVS's translation limit")
	}
	if os.Getenv("SHOW_TRACE") != "" {
		t.Logf("%s", tr)
	}
	last := strings.LastIndex(tr, "Datapath actions:")
	if last < 0 {
		t.Fatalf("no datapath actions:\n%s", tr)
	}
	if dp := strings.TrimSpace(tr[last:]); dp == "Datapath actions: drop" {
		t.Errorf("the last port of the chain got nothing: %s", dp)
	}
}
