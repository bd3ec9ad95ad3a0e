package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
)

// TestLoadBalancerVLAN: the lb lab on a VLAN tenant network (VLAN 120 on
// physnet1, mapped by every agent), so the members on hv2 and hv3 are
// reached, and answer, through the physical network's uplink, tagged,
// instead of a tunnel. NAT mode: 300 requests (100 from each client)
// all answered and spread over the three members; then DSR mode (the
// member-side setup of TestLoadBalancerDSR): 300 more, the same. In
// both modes the VIP also has a floating IP (the external network
// beside, lbLab.floatingIP): 150 requests from the internet all answered
// and spread, the members' replies steered to the floating IP's home
// over the VLAN (addressed to the VIP port's MAC).
func TestLoadBalancerVLAN(t *testing.T) {
	lab := newLBLabNet(t, hvlab.Options{Physnet: true, External: true}, []string{physnet, hvlab.ExternalPhysnet},
		map[string]any{"provider:network_type": "vlan", "provider:physical_network": physnet, "provider:segmentation_id": 120},
		nil, "--bridge-mappings", physnet+":"+hvlab.PhysnetBridge+","+hvlab.ExternalPhysnet+":"+hvlab.ExternalBridge)
	_, url, get := lab.floatingIP(t)
	in := lab.env.l.Internet()
	check := func(mode string) {
		t.Helper()
		// 100 expected each of 300; 50 is over 6 standard deviations below.
		lab.spread(t, mode+" on VLAN, through the VIP", 300, lab.requests(100), 50)
		out, _ := in.ExecErr("sh", "-c", "for i in $(seq 150); do curl -s -m 3 "+url+" || echo FAIL; done")
		// 50 expected each of 150; 20 is over 5 standard deviations below.
		lab.spread(t, mode+" on VLAN, from the internet to the floating IP", 150, lineCounts(out), 20)
	}
	check("NAT")
	lab.toDSR(t)
	waitFor(t, 30*time.Second, "the internet answered in DSR mode", func() bool { return strings.HasPrefix(get(), "m") })
	check("DSR")
	if t.Failed() {
		dumpHVs(t, lab.hvs)
	}
}
