package lb

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
)

// TestOVSAcceptsAndTraces loads hv1's whole pipeline (miss flows,
// isolation, lb) into a real OVS 3.1 bridge (userspace datapath) as
// ovs-ofctl text, which OVS must accept, and traces a new connection to
// the VIP: the first pass looks conntrack up with nat and recirculates
// into lb, the second (ct_state new) goes to the select group, which
// OVS resolves by dp_hash after one more recirculation (ofproto/trace
// stops there: it cannot follow the hash). No packet is sent. The
// established path is not traced here: --ct-next sets ct_state but does
// not apply a NAT it has not seen committed, so the second pass would
// still see the VIP (the fake-switch walks, with ConnTable, cover it).
func TestOVSAcceptsAndTraces(t *testing.T) {
	ovslab.RequireE2E(t)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{})
	for _, p := range hv1Port {
		br.AddPort("", int(p))
	}
	st := fullState(t, newScenario("ROUND_ROBIN").input("hv1"))
	for _, g := range st.Groups {
		br.Ofctl("add-group", br.Name, g.String())
	}
	var specs []string
	for _, f := range st.SortedFlows() {
		specs = append(specs, f.String())
	}
	br.AddFlows(specs...)
	trace := func(flow, ct string) string {
		t.Helper()
		out, err := exec.Command("ovs-appctl", "ofproto/trace", br.Name, flow, "--ct-next", ct).CombinedOutput()
		if err != nil {
			t.Fatalf("trace: %v\n%s", err, out)
		}
		return string(out)
	}
	syn := "in_port=1,tcp,dl_src=fa:16:3e:0c:00:01,dl_dst=fa:16:3e:ff:01:00,nw_src=10.0.0.11,nw_dst=10.0.0.100,tp_src=40000,tp_dst=80"
	out := trace(syn, "trk,new")
	if !strings.Contains(out, fmt.Sprintf("ct(table=5,zone=%d,nat)", Zone(100))) || !strings.Contains(out, "group:") ||
		!strings.Contains(ovslab.DatapathActions(out), "hash(") {
		t.Fatalf("new connection: want ct(nat) lookup, then the select group (dp_hash):\n%s", out)
	}
}

// TestOVSAcceptsSourceIP: OVS accepts the SOURCE_IP flows (multipath into
// reg6[16..31], the per-link commit flows), and the trace of a new
// connection goes through the multipath flow and, on its recirculation,
// a per-link flow that commits the DNAT (the flood group seen after is
// isolation's, for the trace's unanswered member MAC).
func TestOVSAcceptsSourceIP(t *testing.T) {
	ovslab.RequireE2E(t)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{})
	for _, p := range hv1Port {
		br.AddPort("", int(p))
	}
	st := fullState(t, sourceIPScenario().input("hv1"))
	for _, g := range st.Groups {
		br.Ofctl("add-group", br.Name, g.String()) // isolation's flood groups
	}
	var specs []string
	for _, f := range st.SortedFlows() {
		specs = append(specs, f.String())
	}
	br.AddFlows(specs...)
	syn := "in_port=1,tcp,dl_src=fa:16:3e:0c:00:01,dl_dst=fa:16:3e:ff:01:00,nw_src=10.0.0.11,nw_dst=10.0.0.100,tp_src=40000,tp_dst=80"
	out, err := exec.Command("ovs-appctl", "ofproto/trace", br.Name, syn, "--ct-next", "trk,new", "--ct-next", "trk,new").CombinedOutput()
	if err != nil {
		t.Fatalf("trace: %v\n%s", err, out)
	}
	s := string(out)
	mp, commit := strings.Index(s, "multipath(nw_src,0,hrw,3,0,"), strings.Index(s, "ct(commit,table=5,zone=")
	if mp < 0 || commit < mp || !strings.Contains(s[commit:], "nat(dst=10.0.0.2") {
		t.Fatalf("SOURCE_IP new connection: want multipath, then a commit with nat(dst=member):\n%s", s)
	}
}

// TestOVSAcceptsDSR: OVS takes a DSR pool's group (buckets set dl_dst and
// resubmit to dnat) and flow, and a new connection's trace goes to the
// group with no conntrack action before it.
func TestOVSAcceptsDSR(t *testing.T) {
	ovslab.RequireE2E(t)
	br := ovslab.NewBridge(t, ovslab.BridgeOptions{})
	for _, p := range hv1Port {
		br.AddPort("", int(p))
	}
	st := fullState(t, dsrScenario().input("hv1"))
	for _, g := range st.Groups {
		br.Ofctl("add-group", br.Name, g.String())
	}
	var specs []string
	for _, f := range st.SortedFlows() {
		specs = append(specs, f.String())
	}
	br.AddFlows(specs...)
	syn := "in_port=1,tcp,dl_src=fa:16:3e:0c:00:01,dl_dst=fa:16:3e:ff:01:00,nw_src=10.0.0.11,nw_dst=10.0.0.100,tp_src=40000,tp_dst=80"
	out, err := exec.Command("ovs-appctl", "ofproto/trace", br.Name, syn, "--ct-next", "trk,new").CombinedOutput()
	if err != nil {
		t.Fatalf("trace: %v\n%s", err, out)
	}
	// The lookup in the lb zone, then (ct_mark 0: no member yet) the
	// select group; OVS's trace stops at the dp_hash recirculation, so
	// the bucket's commit is checked by TestWalkDSR and the lab test.
	if s := string(out); !strings.Contains(s, "group:") || !strings.Contains(s, "ct(zone=") {
		t.Fatalf("DSR new connection: want the conntrack lookup and the select group:\n%s", s)
	}
}
