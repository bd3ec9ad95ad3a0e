package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nimbus-sdn/nimbus/cluster/snatlease"
	"github.com/nimbus-sdn/nimbus/internal/etcdtest"
	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/store"
)

// TestChassisRolesOnTLSEtcd runs a real etcd (Debian etcd 3.4) with TLS
// and client-certificate authentication, sets up the roles with
// etcdRoles and turns auth on, then checks what each identity may do:
// the controller everything under the Nimbus prefix; a chassis (by
// certificate CN, and by password) its own chassis record and reading the
// model, but neither another chassis's record, nor any other model
// record, nor the LLDP secret.
func TestChassisRolesOnTLSEtcd(t *testing.T) {
	pki := etcdtest.NewPKI(t)
	ec := etcdtest.StartTLS(t, pki, "127.0.0.1")
	ep := ec.Endpoints()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	open := func(cn, user, password string) *store.Store {
		t.Helper()
		cert, key := pki.Issue(cn)
		st, err := store.Open(ctx, store.Config{Endpoints: ep, CertFile: cert, KeyFile: key, CAFile: pki.CA,
			Username: user, Password: password, Logger: quiet})
		if err != nil {
			t.Fatalf("open etcd as %s/%s: %v", cn, user, err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}

	root := open("root", "", "")
	creds, err := etcdRoles(ctx, root.Client(), rolesSpec{Chassis: []string{"hv1", "hv2"}, Passwords: true, EnableAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	pass := map[string]string{}
	for _, c := range creds {
		pass[c.User] = c.Password
	}
	// Idempotent: a second run (auth now on, as root by certificate)
	// succeeds and only rotates passwords.
	if _, err := etcdRoles(ctx, root.Client(), rolesSpec{Chassis: []string{"hv1"}}); err != nil {
		t.Fatalf("second run: %v", err)
	}

	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, rpctypes.ErrPermissionDenied) && !errors.Is(err, rpctypes.ErrUserEmpty) {
			t.Errorf("%s: %v, want permission denied", what, err)
		}
	}
	allowed := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}

	// The controller (certificate CN nimbus-controller): the whole prefix.
	ctl := open(controllerUser, "", "")
	lldp, err := ctl.Secret(ctx, "lldp")
	allowed("controller creates the LLDP secret", err)
	_, err = ctl.Create(ctx, &model.Network{Base: model.Base{ID: "net1"}})
	allowed("controller creates a network", err)

	// Chassis hv1 by certificate CN, doing what the node agent does.
	hv1 := open(ChassisUser("hv1"), "", "")
	_, err = hv1.Create(ctx, &model.Chassis{Name: "hv1", TunnelIP: "192.0.2.1", DPID: "0000000000000001"})
	allowed("hv1 registers its chassis", err)
	_, rev, err := hv1.Get(ctx, model.KindChassis, "hv1")
	allowed("hv1 reads its chassis", err)
	_, err = hv1.Update(ctx, &model.Chassis{Name: "hv1", TunnelIP: "192.0.2.11", DPID: "0000000000000001"}, rev)
	allowed("hv1 updates its chassis", err)
	snap, err := hv1.Load(ctx)
	allowed("hv1 reads the model (its mirror)", err)
	if err == nil && len(snap.Chassis()) != 1 {
		t.Errorf("hv1 sees %d chassis, want 1", len(snap.Chassis()))
	}
	m := hv1.NewMirror()
	mctx, mcancel := context.WithCancel(ctx)
	go m.Run(mctx)
	allowed("hv1's mirror loads", m.WaitLoaded(mctx))
	mcancel()

	// The node agent's SNAT leases (cluster/snatlease).
	sl, err := snatlease.New(ctx, snatlease.Config{Client: hv1.Client(), Chassis: "hv1"})
	allowed("hv1 grants its SNAT lease", err)
	if err == nil {
		_, err = sl.Ensure(ctx, "203.0.113.1", "net1", 1)
		allowed("hv1 leases a SNAT port block", err)
		_, _, err = sl.Campaign(ctx, "203.0.113.1")
		allowed("hv1 campaigns for an external IP", err)
		allowed("hv1 revokes its SNAT lease", sl.Close())
	}

	_, err = hv1.Create(ctx, &model.Chassis{Name: "hv2", TunnelIP: "192.0.2.66"})
	denied("hv1 creates hv2's chassis", err)
	_, err = hv1.Create(ctx, &model.Chassis{Name: "hv10", TunnelIP: "192.0.2.66"})
	denied("hv1 creates hv10's chassis (prefix of its own name)", err)
	_, err = hv1.Create(ctx, &model.Network{Base: model.Base{ID: "evil"}})
	denied("hv1 creates a network", err)
	_, err = hv1.Put(ctx, &model.Network{Base: model.Base{ID: "net1", Name: "hijacked"}})
	denied("hv1 overwrites a network", err)
	err = hv1.Remove(ctx, model.KindNetwork, "net1")
	denied("hv1 deletes a network", err)
	_, err = hv1.Client().Get(ctx, store.Prefix+"secrets/lldp")
	denied("hv1 reads the LLDP secret", err)
	_, err = hv1.Secret(ctx, "lldp")
	denied("hv1 reads the LLDP secret through Secret", err)
	_, err = hv1.Client().Get(ctx, store.Prefix+"cluster/", clientv3WithPrefix()...)
	denied("hv1 reads cluster state", err)

	// Chassis hv2 by password (its certificate's CN is no user).
	hv2 := open("some-hypervisor", ChassisUser("hv2"), pass[ChassisUser("hv2")])
	_, err = hv2.Create(ctx, &model.Chassis{Name: "hv2", TunnelIP: "192.0.2.2"})
	allowed("hv2 (password) registers its chassis", err)
	_, err = hv2.Put(ctx, &model.Chassis{Name: "hv1", TunnelIP: "192.0.2.66"})
	denied("hv2 overwrites hv1's chassis", err)
	err = hv2.Remove(ctx, model.KindChassis, "hv1")
	denied("hv2 deletes hv1's chassis", err)

	// A client with a CA certificate but no etcd user reads nothing.
	anon := open("nobody", "", "")
	_, err = anon.Load(ctx)
	denied("an unknown identity reads the model", err)

	// The records are as their owners wrote them.
	r, _, err := ctl.Get(ctx, model.KindChassis, "hv1")
	if err != nil || r.(*model.Chassis).TunnelIP != "192.0.2.11" {
		t.Errorf("hv1's record: %+v %v", r, err)
	}
	if again, err := ctl.Secret(ctx, "lldp"); err != nil || string(again) != string(lldp) {
		t.Errorf("LLDP secret changed: %v", err)
	}
}

func clientv3WithPrefix() []clientv3.OpOption { return []clientv3.OpOption{clientv3.WithPrefix()} }
