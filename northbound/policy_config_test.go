package northbound_test

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/northbound"
)

// The list bounds of finding 1 are configuration (Neutron's options of
// the same names).
func TestListAttributeBoundsConfig(t *testing.T) {
	b := newAPI(t, openEmbedded(t), northbound.Config{MaxSubnetHostRoutes: 2, MaxDNSNameservers: 1, MaxFixedIPsPerPort: 1, MaxAllowedAddressPairs: 1})
	bnet := str(b.network(t, "p", "n"), "id")
	b.do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": bnet, "cidr": "10.0.0.0/24", "project_id": "p",
		"host_routes": routes(3)}}).err(t, 400, "HostRoutesExhausted")
	b.do("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": bnet, "cidr": "10.0.0.0/24", "project_id": "p",
		"dns_nameservers": nameservers(2)}}).err(t, 400, "DNSNameServersExhausted")
	b.do("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": bnet, "project_id": "p", "allowed_address_pairs": pairs(2)}}).
		err(t, 400, "AllowedAddressPairExhausted")
}
