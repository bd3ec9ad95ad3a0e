// Package names holds the naming conventions shared by the node agent
// (which creates OVS ports) and the isolation app (which finds them by
// name in the switch's port list). It imports nothing of Nimbus, so apps
// can use it without pulling in etcd or OVS tooling.
package names

import (
	"crypto/sha256"
	"encoding/hex"
)

// MaxIfName is the longest Linux interface name (IFNAMSIZ-1); OVS port
// names follow the same limit.
const MaxIfName = 15

// TunnelPrefix starts every GRE tunnel port the node agent creates.
const TunnelPrefix = "gre-"

// TunnelPortName names the GRE port on br-int toward peerChassis:
// "gre-" + the first 11 hex digits of SHA-256(peer name), 15 characters.
// Both ends compute it from the chassis name alone.
func TunnelPortName(peerChassis string) string {
	sum := sha256.Sum256([]byte(peerChassis))
	return TunnelPrefix + hex.EncodeToString(sum[:])[:MaxIfName-len(TunnelPrefix)]
}

// PhysPrefix starts the br-int side of a physical network's patch pair.
const PhysPrefix = "phy-"

// IntPrefix starts the bridge-mapping side (br-phy) of the patch pair.
const IntPrefix = "int-"

// PhysPortName names the port on br-int that carries physical network
// physnet (a patch port whose peer is IntPortName(physnet) on the bridge
// chassis.Mappings[physnet] names): "phy-" + physnet, or "phy-" + a hash
// when the physnet name is too long for an interface name.
func PhysPortName(physnet string) string { return short(PhysPrefix, physnet) }

// IntPortName names the peer of PhysPortName on the mapped bridge.
func IntPortName(physnet string) string { return short(IntPrefix, physnet) }

func short(prefix, name string) string {
	if len(prefix)+len(name) <= MaxIfName {
		return prefix + name
	}
	sum := sha256.Sum256([]byte(name))
	return prefix + hex.EncodeToString(sum[:])[:MaxIfName-len(prefix)]
}

// VMPortName is Neutron's tap device name for a port id: "tap" + the
// first 11 characters of the id.
func VMPortName(portID string) string {
	if len(portID) > 11 {
		portID = portID[:11]
	}
	return "tap" + portID
}

// LBProbePrefix starts the br-int side of a VIP's health-probe veth pair
// (the node agent makes one on each chassis holding a monitored member of
// the VIP's pool; app/lb steers probes and their replies through it).
const LBProbePrefix = "lbp-"

// LBProbePortName names the probe port of VIP vipID: "lbp-" + the first
// 11 hex digits of SHA-256(vip id).
func LBProbePortName(vipID string) string {
	sum := sha256.Sum256([]byte(vipID))
	return LBProbePrefix + hex.EncodeToString(sum[:])[:MaxIfName-len(LBProbePrefix)]
}

// LBProbeIfaceID is the external_ids:iface-id of a VIP's probe port (no
// Neutron port has it, so binding leaves the port to app/lb).
func LBProbeIfaceID(vipID string) string { return "nimbus-lbprobe:" + vipID }
