package app_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// forbidden are the packages no app may depend on, directly or not: the
// wire (ofproto and the OpenFlow library), etcd, the store, the cluster,
// the reconciler and the node agent. Apps are pure functions of the model
// and the topology; what they need of those packages' vocabulary lives in
// pipeline, binding and model.
var forbidden = []string{
	"github.com/nimbus-sdn/nimbus/ofproto",
	"github.com/netrack/openflow",
	"go.etcd.io/etcd",
	"github.com/nimbus-sdn/nimbus/store",
	"github.com/nimbus-sdn/nimbus/cluster",
	"github.com/nimbus-sdn/nimbus/reconcile",
	"github.com/nimbus-sdn/nimbus/node",
}

// pkg is what `go list -deps -json` says of one package.
type pkg struct {
	ImportPath string
	Deps       []string
}

// violations returns, per app package, the forbidden packages it
// depends on (a package "under" a forbidden one counts: node/names,
// go.etcd.io/etcd/client/v3).
func violations(pkgs []pkg) map[string][]string {
	out := map[string][]string{}
	for _, p := range pkgs {
		if !strings.HasPrefix(p.ImportPath, "github.com/nimbus-sdn/nimbus/app") {
			continue
		}
		for _, d := range append([]string{p.ImportPath}, p.Deps...) {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					out[p.ImportPath] = append(out[p.ImportPath], d)
				}
			}
		}
	}
	return out
}

// The rule itself, on synthetic package lists: a deliberate violation
// (an app reaching reconcile, node/names or etcd through a dependency)
// fails; look-alike names do not.
func TestViolationsTable(t *testing.T) {
	cases := []struct {
		name string
		pkgs []pkg
		want int
	}{
		{"clean", []pkg{{"github.com/nimbus-sdn/nimbus/app/isolation", []string{"github.com/nimbus-sdn/nimbus/pipeline", "github.com/nimbus-sdn/nimbus/binding", "github.com/nimbus-sdn/nimbus/model/names"}}}, 0},
		{"reconcile for a constant", []pkg{{"github.com/nimbus-sdn/nimbus/app/isolation", []string{"github.com/nimbus-sdn/nimbus/reconcile", "github.com/nimbus-sdn/nimbus/ofproto"}}}, 2},
		{"node/names", []pkg{{"github.com/nimbus-sdn/nimbus/app/l3router", []string{"github.com/nimbus-sdn/nimbus/node/names"}}}, 1},
		{"etcd through a helper", []pkg{{"github.com/nimbus-sdn/nimbus/app/nat", []string{"github.com/nimbus-sdn/nimbus/internal/x", "go.etcd.io/etcd/client/v3"}}}, 1},
		{"the OpenFlow library", []pkg{{"github.com/nimbus-sdn/nimbus/app/lb", []string{"github.com/netrack/openflow/ofp"}}}, 1},
		{"store and cluster", []pkg{{"github.com/nimbus-sdn/nimbus/app/secgroup", []string{"github.com/nimbus-sdn/nimbus/store", "github.com/nimbus-sdn/nimbus/cluster"}}}, 2},
		{"look-alikes are fine", []pkg{{"github.com/nimbus-sdn/nimbus/app/x", []string{"github.com/nimbus-sdn/nimbus/nodeinfo", "github.com/nimbus-sdn/nimbus/storefront"}}}, 0},
		{"not an app", []pkg{{"github.com/nimbus-sdn/nimbus/switches", []string{"github.com/nimbus-sdn/nimbus/reconcile"}}}, 0},
	}
	for _, c := range cases {
		got := 0
		for _, v := range violations(c.pkgs) {
			got += len(v)
		}
		if got != c.want {
			t.Errorf("%s: %d violations %v, want %d", c.name, got, violations(c.pkgs), c.want)
		}
	}
}

// Every package under app/ (its non-test code: what the controller links)
// stays off the wire, etcd, the store, the cluster, the reconciler and
// the node agent.
func TestAppsImportBoundary(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "list", "-deps=false", "-json=ImportPath,Deps", "github.com/nimbus-sdn/nimbus/app/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 3 {
		t.Fatalf("go list found %d app packages", len(pkgs))
	}
	for _, p := range pkgs {
		if len(p.Deps) == 0 {
			t.Fatalf("%s: no dependencies listed", p.ImportPath)
		}
	}
	for app, bad := range violations(pkgs) {
		t.Errorf("%s depends on %v", app, bad)
	}
}
