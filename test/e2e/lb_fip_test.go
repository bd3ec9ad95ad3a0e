package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
)

// TestLoadBalancerFloatingIP: clients from outside reach a VIP through a
// floating IP on the VIP's port (issue 12, deliverable 1). The lb lab
// (VIP 10.0.0.100:80, members m1..m3 on the three hypervisors, NAT mode)
// with the external network (hvlab Options.External, every agent
// mapping extnet:br-ex); a router with its gateway on the external
// network and an interface on the VIP's subnet; a floating IP made and
// associated with the VIP's port by the openstack CLI. The floating IP's
// home chassis (binding.FloatingIPHome) answers ARP for it, rewrites it
// to the VIP and balances; the members' replies come back to the home
// (steered from the remote members' chassis) and leave its uplink from
// the floating IP. From the internet namespace: 150 requests all
// answered, spread over the three members (each at least 20), all the
// replies leave through one hypervisor's external link (the home's),
// and a capture on the internet's interface sees only the floating IP,
// never the VIP or a member's address or port. Each member then gets a
// floating IP of its own, which the internet reaches directly while the
// VIP's keeps answering. Then the same in DSR mode. Then every member is deleted: the internet's request is refused
// at once (a RST from the floating IP), in DSR mode and in NAT mode.
func TestLoadBalancerFloatingIP(t *testing.T) {
	lab := newLBLabWith(t, hvlab.Options{External: true}, []string{hvlab.ExternalPhysnet}, nil,
		"--bridge-mappings", hvlab.ExternalPhysnet+":"+hvlab.ExternalBridge)
	nb, hvs := lab.nb, lab.hvs
	in := lab.env.l.Internet()
	fip, url, get := lab.floatingIP(t)

	check := func(mode string) {
		t.Helper()
		capt := hvlab.Tcpdump(t, in.NS(), "inet0", "tcp")
		// Each hypervisor's external link: the replies of all three members
		// leave through one, the floating IP's home.
		var links []*hvlab.Capture
		for i := range hvs {
			links = append(links, hvlab.Tcpdump(t, lab.env.l.UnderlayNS(), fmt.Sprintf("ex%d", i+1), "tcp and src host "+fip))
		}
		out, _ := in.ExecErr("sh", "-c", "for i in $(seq 150); do curl -s -m 3 "+url+" || echo FAIL; done")
		lines := capt.Stop()
		var carried []string
		for i, c := range links {
			if n := len(c.Stop()); n > 0 {
				carried = append(carried, fmt.Sprintf("%s (ex%d: %d packets)", hvs[i].Name(), i+1, n))
			}
		}
		t.Logf("%s: the floating IP's replies left through %v", mode, carried)
		if len(carried) != 1 {
			t.Errorf("%s: the floating IP's replies left through %d hypervisors' external links (%v), want one: the home", mode, len(carried), carried)
		}
		// 50 expected each; 20 is over 5 standard deviations below.
		lab.spread(t, mode+", from the internet to the floating IP", 150, lineCounts(out), 20)
		// What the internet sees: only the floating IP.
		from, to := 0, 0
		for _, l := range lines {
			if _, rest, ok := strings.Cut(l, " "); ok {
				l = rest // not the -tt timestamp (its fraction may read .8080...)
			}
			if strings.Contains(l, " "+fip+".80 > "+in.IP()+".") {
				from++
			}
			if strings.Contains(l, " > "+fip+".80:") {
				to++
			}
			if strings.Contains(l, "10.0.0.") || strings.Contains(l, ".8080") {
				t.Errorf("%s: the internet saw the VIP or a member: %s", mode, l)
				break
			}
		}
		t.Logf("%s: capture on the internet's inet0: %d packets, %d to %s:80, %d from it", mode, len(lines), to, fip, from)
		if from < 150 || to < 150 {
			t.Errorf("%s: capture: %d packets to and %d from the floating IP, want at least 150 each", mode, to, from)
		}
	}
	check("NAT")
	// The floating IP answers pings (its home, app/nat's N2e), members
	// or not (checked again below with none).
	pingFIP := func(when string) {
		t.Helper()
		if out, err := in.ExecErr("ping", "-c", "3", "-i", "0.2", "-W", "2", fip); err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Errorf("%s: the internet's ping to the floating IP: %v\n%s", when, err, out)
		} else {
			t.Logf("%s: the floating IP answers pings (3 of 3)", when)
		}
	}
	pingFIP("NAT")
	// Each member also gets a floating IP of its own: the internet reaches
	// each directly on 8080 (its replies leave its own chassis from its
	// floating IP: not steered to the VIP's home, where they would be
	// lost), and the VIP's floating IP still answers.
	ext := nb.get("floatingips/" + lab.vipFIPID)["floating_network_id"].(string)
	for i, m := range lab.members {
		mf := openstackJSON(t, lab.env.c.API, "floating ip", "create", "--project", lab.project, "--port", m.Name(), ext)
		murl := "http://" + mf["floating_ip_address"].(string) + ":8080/"
		want := fmt.Sprintf("m%d", i+1)
		waitFor(t, 30*time.Second, want+" answers on its own floating IP", func() bool {
			out, err := in.ExecErr("curl", "-s", "-m", "2", murl)
			return err == nil && strings.TrimSpace(out) == want
		})
		// From client ports below the ephemeral range, never used for
		// the VIP's connections above: a direct connection that reuses
		// the addresses and ports of a load-balanced one within its
		// conntrack TIME_WAIT is not served (app/lb/README.md, "Known
		// limits": its replies are taken for the ended one's).
		out, _ := in.ExecErr("sh", "-c", fmt.Sprintf("for i in $(seq 20); do curl -s -m 3 --local-port $((%d+i)) %s || echo FAIL; done", 20000+100*i, murl))
		got := strings.Count(out, want)
		t.Logf("%s's own floating IP %s: %d of 20 requests answered by it", want, mf["floating_ip_address"], got)
		if got != 20 {
			t.Errorf("%s's own floating IP: %d of 20 requests answered by %s:\n%s", want, got, want, out)
		}
	}
	if !strings.HasPrefix(get(), "m") {
		t.Errorf("the VIP's floating IP stopped answering once the members had their own")
	}
	// The same pool switched to DSR mode (TestLoadBalancerDSR's member
	// setup): the members answer from VIP:80, steered to the home, where
	// app/nat turns the VIP into the floating IP.
	lab.toDSR(t)
	waitFor(t, 30*time.Second, "the internet answered in DSR mode", func() bool { return strings.HasPrefix(get(), "m") })
	check("DSR")
	// Every member gone: the internet's request is refused at once, in
	// both modes (the lb app's RST, from the floating IP through the
	// home's uplink), curl exit 7, not a timeout (28).
	for _, id := range lab.memberIDs {
		lab.nb.del("lb/members/" + id)
	}
	refused := func(mode string) {
		t.Helper()
		code := -1
		deadline := time.Now().Add(20 * time.Second)
		var took time.Duration
		for code != 7 && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			err := exec.Command("ip", "netns", "exec", in.NS(), "curl", "-s", "-m", "5", url).Run()
			took = time.Since(start)
			code = 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		t.Logf("%s, no member: the internet's curl exit %d after %v", mode, code, took.Round(time.Millisecond))
		if code != 7 {
			t.Errorf("%s, no member: the internet's curl exit %d, want 7 (connection refused by a RST)", mode, code)
		}
	}
	refused("DSR")
	pingFIP("no member")
	nb.put("lb/pools/"+lab.pool["id"].(string), map[string]any{"pool": map[string]any{"description": "web"}})
	waitFor(t, 30*time.Second, "NAT mode again on every chassis", func() bool {
		for _, hv := range hvs {
			out, err := hv.OfctlErr("-O", "OpenFlow13", "dump-flows", "br-int", "table=5")
			// flow 1 of NAT mode: the lookup with nat (DSR's has none)
			if err != nil || !strings.Contains(out, "nat)") {
				return false
			}
		}
		return true
	})
	refused("NAT")
	if t.Failed() {
		dumpHVs(t, hvs)
	}
}

// floatingIP gives the lb lab's VIP a floating IP from the internet
// (the lab made with hvlab Options.External and the agents mapping
// extnet): an external network and subnet, a router with its gateway
// there and an interface on the VIP's subnet, the members' default
// route through it, their security group open to the outside on 8080
// and 80, and a floating IP made and associated with the VIP's port by
// the openstack CLI; it waits for the first answer from the internet and
// for the floating IP ACTIVE. It returns the floating IP, its URL and a
// fetch of that URL from the internet ("" on failure).
func (lab *lbLab) floatingIP(t *testing.T) (string, string, func() string) {
	t.Helper()
	nb, project, api := lab.nb, lab.project, lab.env.c.API
	in := lab.env.l.Internet()
	x := openstackJSON(t, api, "network", "create", "--project", "admin", "--external", "--provider-network-type", "flat",
		"--provider-physical-network", hvlab.ExternalPhysnet, "ext")
	openstackJSON(t, api, "subnet", "create", "--project", "admin", "--network", x["id"].(string), "--subnet-range", in.CIDR(),
		"--gateway", in.IP(), "--no-dhcp", "--allocation-pool", "start="+in.Addr(10)+",end="+in.Addr(99), "ext-sub")
	rt := openstackJSON(t, api, "router", "create", "--project", project, "--external-gateway", x["id"].(string), "r-lb")
	openstackCLI(t, api, "router", "add", "subnet", rt["id"].(string), lab.subnet["id"].(string))
	// The members answer the outside through their router, and their
	// security group lets the outside in on 8080.
	for _, m := range lab.members {
		m.Exec("ip", "route", "add", "default", "via", "10.0.0.1")
	}
	var sgs struct {
		SecurityGroups []struct {
			ID, Name  string
			ProjectID string `json:"project_id"`
		} `json:"security_groups"`
	}
	if err := getJSON("http://"+api+"/v2.0/security-groups", &sgs); err != nil {
		t.Fatal(err)
	}
	added := 0
	for _, g := range sgs.SecurityGroups {
		if g.ProjectID != project || g.Name != "default" {
			continue
		}
		for _, port := range []int{8080, 80} { // NAT members listen on 8080, DSR members on the VIP's 80
			nb.post("security-group-rules", map[string]any{"security_group_rule": map[string]any{"security_group_id": g.ID,
				"project_id": project, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
				"port_range_min": port, "port_range_max": port, "remote_ip_prefix": "0.0.0.0/0"}})
		}
		added++
	}
	if added != 1 {
		t.Fatalf("%s's default security group: found %d", project, added)
	}
	f := openstackJSON(t, api, "floating ip", "create", "--project", project, x["id"].(string))
	fip := f["floating_ip_address"].(string)
	start := time.Now()
	openstackCLI(t, api, "floating ip", "set", "--port", lab.vip["port_id"].(string), f["id"].(string))
	url := "http://" + fip + "/"
	get := func() string {
		out, err := in.ExecErr("curl", "-s", "-m", "2", url)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(out)
	}
	waitFor(t, 30*time.Second, "the internet fetches from the VIP by its floating IP", func() bool { return strings.HasPrefix(get(), "m") })
	t.Logf("floating IP %s associated with the VIP's port -> first answer: %v", fip, time.Since(start).Round(time.Millisecond))
	// Its status comes from the data plane: its flows are on the home
	// (and the members' chassis), none refused.
	waitFor(t, 30*time.Second, "the floating IP ACTIVE", func() bool { return nb.get("floatingips/" + f["id"].(string))["status"] == "ACTIVE" })
	lab.vipFIPID = f["id"].(string)

	return fip, url, get
}
