package store_test

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// etcdUsers are the packages that write the model but must do it through
// store's vocabulary (Guard, Plan, Commit, the raw reads), never through
// the etcd client: guarded transactions have one home.
var etcdUsers = []string{
	"github.com/nimbus-sdn/nimbus/northbound",
	"github.com/nimbus-sdn/nimbus/switches",
}

// etcdAllowed may import the etcd client: store itself, cluster's
// elections and leases, and the controller's main (etcd users and roles,
// handing the client to cluster).
var etcdAllowed = map[string]bool{
	"github.com/nimbus-sdn/nimbus/store":             true,
	"github.com/nimbus-sdn/nimbus/cluster":           true,
	"github.com/nimbus-sdn/nimbus/cluster/snatlease": true,
	"github.com/nimbus-sdn/nimbus/cmd/controller":    true,
}

// importPkg is what `go list -json` says of one package.
type importPkg struct {
	ImportPath string
	Imports    []string
}

// etcdImports returns, per package, the etcd packages it imports
// directly in its non-test code (store itself may; a package reaching
// etcd only through store does not count).
func etcdImports(pkgs []importPkg) map[string][]string {
	out := map[string][]string{}
	for _, p := range pkgs {
		if etcdAllowed[p.ImportPath] {
			continue
		}
		for _, d := range p.Imports {
			if d == "go.etcd.io/etcd" || strings.HasPrefix(d, "go.etcd.io/etcd/") {
				out[p.ImportPath] = append(out[p.ImportPath], d)
			}
		}
	}
	return out
}

// The rule on synthetic lists: a deliberate violation (northbound
// building clientv3.Cmp plans, switches taking clientv3.Cmp) fails.
func TestEtcdImportsTable(t *testing.T) {
	cases := []struct {
		name string
		pkgs []importPkg
		want int
	}{
		{"through store", []importPkg{{"github.com/nimbus-sdn/nimbus/northbound", []string{"github.com/nimbus-sdn/nimbus/store", "net/http"}}}, 0},
		{"raw client", []importPkg{{"github.com/nimbus-sdn/nimbus/northbound", []string{"github.com/nimbus-sdn/nimbus/store", "go.etcd.io/etcd/client/v3"}}}, 1},
		{"clientv3.Cmp guards", []importPkg{{"github.com/nimbus-sdn/nimbus/switches", []string{"go.etcd.io/etcd/client/v3", "go.etcd.io/etcd/api/v3/mvccpb"}}}, 2},
		{"look-alike", []importPkg{{"github.com/nimbus-sdn/nimbus/switches", []string{"go.etcd.io/etcdish"}}}, 0},
		{"a new package", []importPkg{{"github.com/nimbus-sdn/nimbus/app/l3router", []string{"go.etcd.io/etcd/client/v3/concurrency"}}}, 1},
		{"store may", []importPkg{{"github.com/nimbus-sdn/nimbus/store", []string{"go.etcd.io/etcd/client/v3"}}}, 0},
	}
	for _, c := range cases {
		got := 0
		for _, v := range etcdImports(c.pkgs) {
			got += len(v)
		}
		if got != c.want {
			t.Errorf("%s: %d violations %v, want %d", c.name, got, etcdImports(c.pkgs), c.want)
		}
	}
}

// northbound and switches (and every other package but the allowed
// ones) do not import the etcd client.
func TestEtcdImportBoundary(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "list", "-json=ImportPath,Imports", "github.com/nimbus-sdn/nimbus/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []importPkg
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var p importPkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	found := map[string]bool{}
	for _, p := range pkgs {
		found[p.ImportPath] = len(p.Imports) > 0
	}
	for _, u := range etcdUsers {
		if !found[u] {
			t.Fatalf("go list: %s missing or without imports", u)
		}
	}
	for p, bad := range etcdImports(pkgs) {
		t.Errorf("%s imports %v: use store's Guard/Plan", p, bad)
	}
}
