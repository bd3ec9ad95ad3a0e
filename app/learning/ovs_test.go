package learning_test

import (
	"context"
	"fmt"
	"github.com/nimbus-sdn/nimbus/switches"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/app/learning"
	"github.com/nimbus-sdn/nimbus/flow"
	"github.com/nimbus-sdn/nimbus/internal/ofovs"
	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/reconcile"
	"github.com/nimbus-sdn/nimbus/topology"
)

// TestOVSPlainSwitch installs the learning app's state for a plain switch
// whose port 3 a Neutron port claims on a real bridge (through our codec
// and bundles, so OVS accepts the metered punt and the flood group), then
// checks with ofproto/trace that a miss is punted through the meter and
// with ofproto/trace-packet-out that the handler's flood reaches ports 2
// and 4 but not the tenant's port 3.
func TestOVSPlainSwitch(t *testing.T) {
	ovslab.RequireE2E(t)
	br, conn := ofovs.Bridge(t)
	ctx := t.Context()
	topo := &topology.Switch{DPID: br.DPID, Ports: map[uint32]topology.Port{}}
	for n := 1; n <= 4; n++ {
		name := br.AddPort("", n)
		topo.Ports[uint32(n)] = topology.Port{No: uint32(n), Name: name, Up: true}
	}
	m := snapshot(&model.Port{Base: model.Base{ID: "t1"}, NetworkID: "n", Profile: map[string]any{"port_name": topo.Ports[3].Name}})

	a := learning.New(learning.Config{})
	d, err := a.Desired(app.Input{Model: m, Switch: topo})
	if err != nil {
		t.Fatal(err)
	}
	checkDesired(t, d)
	st := flow.NewState()
	for _, f := range pipeline.BaseFlows() {
		st.AddFlow(f)
	}
	for _, f := range d.Flows {
		st.AddFlow(f)
	}
	for _, g := range d.Groups {
		st.Groups[g.ID] = g
	}
	for _, mt := range d.Meters {
		st.Meters[mt.ID] = mt
	}
	sw := &switches.OFSwitch{Conn: conn}
	actx, acancel := context.WithTimeout(ctx, 20*time.Second)
	defer acancel()
	if err := sw.Apply(actx, reconcile.Diff(st, reconcile.NewActual(), true)); err != nil {
		t.Fatalf("OVS refused the learning state: %v", err)
	}

	tr := br.Trace("in_port=1,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff")
	for _, w := range []string{fmt.Sprintf("meter:%d", pipeline.MeterLearning.ID), "CONTROLLER:65535"} {
		if !strings.Contains(tr, w) {
			t.Errorf("miss trace lacks %q:\n%s", w, tr)
		}
	}

	// The handler's flood, as the packet-out it would send.
	var out app.Out
	a.NewSwitchHandler(br.DPID).PacketIn(&app.PacketIn{State: d.Handler, InPort: 1, BufferID: app.NoBuffer, Data: frame("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:01")}, &out)
	if len(out.PacketOuts) != 1 {
		t.Fatalf("no flood: %+v", out)
	}
	acts := flow.ActionsString(out.PacketOuts[0].Actions)
	po, err := exec.Command("ovs-appctl", "ofproto/trace-packet-out", br.Name,
		"in_port=1,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff", acts).CombinedOutput()
	if err != nil {
		t.Fatalf("trace-packet-out %s: %v\n%s", acts, err, po)
	}
	var ofOut []string
	for _, l := range strings.Split(string(po), "\n") {
		if o, ok := strings.CutPrefix(strings.TrimSpace(l), "output:"); ok {
			ofOut = append(ofOut, o)
		}
	}
	if strings.Join(ofOut, ",") != "1,2,4" { // OVS skips the ingress port 1 itself
		t.Errorf("flood %s outputs to %v, want 1 (ingress, skipped), 2, 4:\n%s", acts, ofOut, po)
	}
	if dp := ovslab.DatapathActions(string(po)); strings.Count(dp, ",")+1 != 2 {
		t.Errorf("flood reaches datapath ports %q, want two (ports 2 and 4)", dp)
	}
	t.Logf("flood %s: OpenFlow outputs %v, datapath actions %s", acts, ofOut, ovslab.DatapathActions(string(po)))
}

// Copies of the package's internal test helpers (this file is an external
// test: the OpenFlow adapter it applies the state with lives in switches,
// which imports metrics, which imports this package).

func snapshot(recs ...model.Record) *model.Snapshot {
	m := map[model.Kind]map[string]model.Record{}
	for _, r := range recs {
		if m[r.Kind()] == nil {
			m[r.Kind()] = map[string]model.Record{}
		}
		m[r.Kind()][r.Key()] = r
	}
	return model.NewSnapshot(1, m)
}

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

func checkDesired(t *testing.T, d app.Desired) {
	t.Helper()
	for _, f := range d.Flows {
		if err := pipeline.Check(f); err != nil {
			t.Errorf("contract: %v", err)
		}
	}
}
