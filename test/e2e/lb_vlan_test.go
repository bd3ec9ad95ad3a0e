package e2e

import (
	"fmt"
	"testing"

	"github.com/nimbus-sdn/nimbus/internal/hvlab"
)

// TestLoadBalancerVLAN: the lb lab on a VLAN tenant network (VLAN 120 on
// physnet1, mapped by every agent), so the members on hv2 and hv3 are
// reached, and answer, through the physical network's uplink, tagged,
// instead of a tunnel. NAT mode: 300 requests (100 from each client)
// all answered and spread over the three members; then DSR mode (the
// member-side setup of TestLoadBalancerDSR): 300 more, the same.
func TestLoadBalancerVLAN(t *testing.T) {
	lab := newLBLabNet(t, hvlab.Options{Physnet: true}, []string{physnet},
		map[string]any{"provider:network_type": "vlan", "provider:physical_network": physnet, "provider:segmentation_id": 120},
		nil, "--bridge-mappings", physnet+":"+hvlab.PhysnetBridge)
	check := func(mode string) {
		t.Helper()
		counts := lab.requests(100)
		t.Logf("%s on VLAN: 300 requests through the VIP: %v", mode, counts)
		if counts["FAIL"] != 0 {
			t.Errorf("%s on VLAN: %d of 300 requests failed", mode, counts["FAIL"])
		}
		for i := range lab.members {
			// 100 expected each; 50 is over 6 standard deviations below.
			if got := counts[fmt.Sprintf("m%d", i+1)]; got < 50 {
				t.Errorf("%s on VLAN: member m%d got %d of 300 requests", mode, i+1, got)
			}
		}
	}
	check("NAT")
	lab.toDSR(t)
	check("DSR")
	if t.Failed() {
		dumpHVs(t, lab.hvs)
	}
}
