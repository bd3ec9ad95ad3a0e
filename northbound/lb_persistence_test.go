package northbound_test

import (
	"context"
	"testing"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/northbound"
)

// session_persistence reaches the VIP's model record (what app/lb reads),
// on create and on update, and null clears it; the API view is unchanged.
func TestVIPSessionPersistenceInModel(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{})
	net := str(a.network(t, "p1", "n"), "id")
	sub := str(a.subnet(t, "p1", net, "10.0.0.0/24"), "id")
	pool := a.create(t, "/v2.0/lb/pools", "pool", map[string]any{"subnet_id": sub, "protocol": "TCP", "lb_method": "ROUND_ROBIN", "tenant_id": "p1"})
	vip := a.create(t, "/v2.0/lb/vips", "vip", map[string]any{"pool_id": str(pool, "id"), "subnet_id": sub, "protocol": "TCP",
		"protocol_port": 80, "tenant_id": "p1", "session_persistence": map[string]any{"type": "SOURCE_IP"}})
	rec := func() *model.LBVIP {
		r, _, err := st.Get(context.Background(), model.KindVIP, str(vip, "id"))
		if err != nil {
			t.Fatal(err)
		}
		return r.(*model.LBVIP)
	}
	if sp := rec().SessionPersistence; sp == nil || sp.Type != "SOURCE_IP" {
		t.Fatalf("created with SOURCE_IP: model has %+v", sp)
	}
	if obj(vip, "session_persistence")["type"] != "SOURCE_IP" {
		t.Fatalf("view: %s", fmtJSON(vip))
	}
	a.do("PUT", "/v2.0/lb/vips/"+str(vip, "id"), map[string]any{"vip": map[string]any{"session_persistence": nil}}).must(t, 200)
	if sp := rec().SessionPersistence; sp != nil {
		t.Fatalf("cleared: model has %+v", sp)
	}
	a.do("PUT", "/v2.0/lb/vips/"+str(vip, "id"), map[string]any{"vip": map[string]any{
		"session_persistence": map[string]any{"type": "APP_COOKIE", "cookie_name": "c"}}}).must(t, 200)
	if sp := rec().SessionPersistence; sp == nil || sp.Type != "APP_COOKIE" || sp.CookieName != "c" {
		t.Fatalf("updated: model has %+v", sp)
	}
}

// A member's status is the health monitors' (lbprobe writes it in the
// model): a tenant cannot set it, on create or update, and a later
// update of another attribute keeps what the prober wrote.
func TestMemberStatusNotWritable(t *testing.T) {
	st := openEmbedded(t)
	a := newAPI(t, st, northbound.Config{})
	net := str(a.network(t, "p1", "n"), "id")
	sub := str(a.subnet(t, "p1", net, "10.0.0.0/24"), "id")
	pool := a.create(t, "/v2.0/lb/pools", "pool", map[string]any{"subnet_id": sub, "protocol": "TCP", "lb_method": "ROUND_ROBIN", "tenant_id": "p1"})
	u := a.tenant("p1")
	u.do("POST", "/v2.0/lb/members", map[string]any{"member": map[string]any{"pool_id": str(pool, "id"), "address": "10.0.0.10",
		"protocol_port": 80, "status": "INACTIVE"}}).err(t, 400, "")
	m := obj(u.do("POST", "/v2.0/lb/members", map[string]any{"member": map[string]any{"pool_id": str(pool, "id"),
		"address": "10.0.0.10", "protocol_port": 80}}).must(t, 201), "member")
	u.do("PUT", "/v2.0/lb/members/"+str(m, "id"), map[string]any{"member": map[string]any{"status": "ACTIVE"}}).err(t, 400, "")
	// The prober marks it down; a tenant's weight change keeps that.
	r, rev, err := st.Get(context.Background(), model.KindMember, str(m, "id"))
	if err != nil {
		t.Fatal(err)
	}
	r.(*model.LBMember).Status = "INACTIVE"
	if _, err := st.Update(context.Background(), r, rev); err != nil {
		t.Fatal(err)
	}
	u.do("PUT", "/v2.0/lb/members/"+str(m, "id"), map[string]any{"member": map[string]any{"weight": 3}}).must(t, 200)
	if got := obj(u.do("GET", "/v2.0/lb/members/"+str(m, "id"), nil).must(t, 200), "member"); got["status"] != "INACTIVE" || got["weight"] != float64(3) {
		t.Fatalf("after the tenant's update: %s", fmtJSON(got))
	}
}
