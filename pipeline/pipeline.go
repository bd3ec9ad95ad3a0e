// Package pipeline declares Nimbus's OpenFlow pipeline in one place: the
// ordered tables (owner, purpose, miss behaviour, match and set contract),
// the priority bands, the register and metadata bits, and the cookie
// layout. Every flow an app produces is checked against its table's
// contract before it reaches a switch, and docs/pipeline.md is generated
// from these declarations.
package pipeline

import (
	"fmt"

	"github.com/nimbus-sdn/nimbus/flow"
)

// AppID identifies the app that owns a flow (cookie bits 55..48).
type AppID uint8

// App ids. Zero is never used, so a zero cookie is never ours.
const (
	AppPipeline  AppID = 1 // table-miss and structural flows
	AppLearning  AppID = 2
	AppIsolation AppID = 3
	AppL3Router  AppID = 4
	AppNAT       AppID = 5
	AppLB        AppID = 6
	AppSecGroup  AppID = 7
	AppTopology  AppID = 8 // LLDP link discovery (fabric mode)
	AppSNAT      AppID = 9 // distributed SNAT (router gateways with enable_snat)
)

// DefaultPacketInApp handles packet-ins that no flow of ours sent.
const DefaultPacketInApp = AppLearning

var appNames = map[AppID]string{
	AppPipeline: "pipeline", AppLearning: "learning", AppIsolation: "isolation",
	AppL3Router: "l3router", AppNAT: "nat", AppLB: "lb", AppSecGroup: "secgroup", AppTopology: "topology",
	AppSNAT: "snat",
}

func (a AppID) String() string {
	if n, ok := appNames[a]; ok {
		return n
	}
	return fmt.Sprintf("app%d", uint8(a))
}

// Cookie layout:
//
//	bits 63..56  0x4e ('N'), marks a flow as Nimbus's
//	bits 55..48  app id
//	bit  47      dynamic: installed by a packet-in handler, expires by
//	             timeout, never pruned by the reconciler
//	bits 46..0   object id (a hash of the Neutron object, or an app index)
const (
	CookieMarker     uint64 = 0x4e << 56
	CookieMarkerMask uint64 = 0xff << 56
	cookieAppShift          = 48
	CookieDynamic    uint64 = 1 << 47
	CookieObjectMask uint64 = 1<<47 - 1
	CookieAppMask    uint64 = CookieMarkerMask | 0xff<<cookieAppShift
)

// Cookie builds a cookie for an app's object.
func Cookie(app AppID, object uint64) uint64 {
	return CookieMarker | uint64(app)<<cookieAppShift | object&CookieObjectMask
}

// DynamicCookie builds the cookie of a flow installed by a packet-in handler.
func DynamicCookie(app AppID, object uint64) uint64 { return Cookie(app, object) | CookieDynamic }

// IsOurs reports whether a cookie carries the Nimbus marker.
func IsOurs(cookie uint64) bool { return cookie&CookieMarkerMask == CookieMarker }

// IsDynamic reports whether the flow was installed by a packet-in handler.
func IsDynamic(cookie uint64) bool { return IsOurs(cookie) && cookie&CookieDynamic != 0 }

// CookieApp extracts the app id.
func CookieApp(cookie uint64) AppID { return AppID(cookie >> cookieAppShift) }

// CookieObject extracts the object id.
func CookieObject(cookie uint64) uint64 { return cookie & CookieObjectMask }

// ObjectID hashes an object's identifier (a Neutron UUID) into 47 bits
// (FNV-1a), so one object's flows can be dumped or deleted by cookie.
func ObjectID(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h & CookieObjectMask
}

// Priority bands. Within a table, a higher band always wins.
const (
	PriorityMiss     uint16 = 0     // table-miss flow
	PriorityDefault  uint16 = 100   // catch-alls below specific flows
	PriorityLearned  uint16 = 1000  // flows learned from packet-ins
	PriorityNormal   uint16 = 10000 // per-object flows
	PrioritySpecific uint16 = 20000 // exceptions to per-object flows
	PriorityGuard    uint16 = 30000 // drops that protect (spoofing, invalid ct)
)

// Bands lists the bands for documentation.
var Bands = []struct {
	Name  string
	Value uint16
	Doc   string
}{
	{"PriorityMiss", PriorityMiss, "the table-miss flow every table gets"},
	{"PriorityDefault", PriorityDefault, "catch-alls below specific flows"},
	{"PriorityLearned", PriorityLearned, "flows learned from packet-ins (dynamic cookie)"},
	{"PriorityNormal", PriorityNormal, "per-object flows (a port, a network, a route)"},
	{"PrioritySpecific", PrioritySpecific, "exceptions to per-object flows"},
	{"PriorityGuard", PriorityGuard, "protective drops: spoofing, invalid conntrack state"},
}

// Register and metadata allocation. Each bit range is allocated here and
// nowhere else.
type Bits struct {
	Name  string
	Field flow.Field
	Ofs   uint16
	NBits uint16
	Doc   string
}

// Mask is the bit mask of the range within its field.
func (b Bits) Mask() uint64 { return (uint64(1)<<b.NBits - 1) << b.Ofs }

// Value shifts v into the range.
func (b Bits) Value(v uint64) uint64 { return (v << b.Ofs) & b.Mask() }

// Registers and metadata bits.
var (
	RegPortClass = Bits{"port_class", flow.Reg0, 0, 4, "class of the ingress port: 1 VM, 2 tunnel, 3 physical, 4 router"}
	RegFlags     = Bits{"flags", flow.Reg0, 4, 12, "per-packet flags (bit 4: from local VM, bit 5: ARP answered, bit 6: routed)"}
	RegNetwork   = Bits{"network", flow.Reg1, 0, 24, "network key: the GRE key (< 2^23), or 1<<23 | VLAN id for VLAN networks"}
	RegInPort    = Bits{"in_ofport", flow.Reg2, 0, 32, "ingress OpenFlow port, kept across resubmits"}
	RegOutPort   = Bits{"out_ofport", flow.Reg3, 0, 32, "egress OpenFlow port chosen by L2 forwarding"}
	RegCTZone    = Bits{"ct_zone", flow.Reg4, 0, 16, "conntrack zone of the packet's network"}
	RegRouter    = Bits{"router", flow.Reg5, 0, 16, "router id for L3 lookups"}
	RegLB        = Bits{"lb", flow.Reg6, 0, 16, "load balancer: 1 once the lb table's conntrack lookup ran (its recirculation back into lb is not looked up again), 0 before"}
	RegLBLink    = Bits{"lb_link", flow.Reg6, 16, 16, "load balancer: the member index the multipath hash of the source address (SOURCE_IP persistence) or a DSR VIP's select group chose (read while RegLB is 2)"}
	MetaNetwork  = Bits{"network", flow.Metadata, 0, 24, "network key, mirrored in metadata for write_metadata users"}
	RegSGRemote  = Bits{"sg_remote", flow.Reg7, 0, 32, "security groups: bits 0-29 the remote groups the packet's remote address belongs to, bit 30 classified in from_vm_acl, bit 31 in to_vm_acl"}
)

// AllBits lists every allocation (for docs and overlap checks).
var AllBits = []Bits{RegPortClass, RegFlags, RegNetwork, RegInPort, RegOutPort, RegCTZone, RegRouter, RegLB, RegLBLink, MetaNetwork, RegSGRemote}

// Set is the action that writes v into the range (a plain set-field when
// the range covers the whole field, a masked one otherwise).
func (b Bits) Set(v uint64) flow.SetField {
	if b.Mask() == b.Field.FullMask() {
		return flow.SetField{F: b.Field, Value: v}
	}
	return flow.SetField{F: b.Field, Value: b.Value(v), Mask: b.Mask()}
}

// Match adds "the range holds v" to m (exact when the range covers the
// whole field, masked otherwise) and returns it.
func (b Bits) Match(m flow.Match, v uint64) flow.Match {
	if b.Mask() == b.Field.FullMask() {
		return m.Set(b.Field, v)
	}
	return m.SetMasked(b.Field, b.Value(v), b.Mask())
}

// Port classes, the values of RegPortClass.
const (
	ClassVM     = 1 // a tenant VM's port (a Neutron port bound here)
	ClassTunnel = 2 // a GRE tunnel to another chassis
	ClassPhys   = 3 // a VLAN uplink, or a fabric link
	ClassRouter = 4 // a router's port (L3)
)

// Flags, bits of RegFlags (their values are already shifted into reg0).
const (
	FlagFromVM      = 1 << 4 // the frame came from a local VM
	FlagARPAnswered = 1 << 5 // the ARP responder answered it
	FlagRouted      = 1 << 6 // L3 routed it
)

// SetClass is the action that writes a port class and flags into reg0
// (the class bits and the flag bits given, nothing else).
func SetClass(class, flags uint64) flow.SetField {
	return flow.SetField{F: RegPortClass.Field, Value: class | flags, Mask: RegPortClass.Mask() | flags}
}

// Conntrack zones. The 16-bit zone space is shared out here so that apps
// never commit the same connection in one zone: conntrack takes NAT only
// on a connection's first commit, so the load balancer's DNAT must not
// meet a connection the security groups already committed.
//   - ZoneSG(key), 0x0001-0x7fff: a network's stateful security groups.
//     GRE keys map into 1..0x6fff (keys above share zones modulo 0x6fff),
//     VLAN networks (key bit 23) to 0x7000 | VLAN id.
//   - ZoneLB(key) = ZoneSG(key) | 0x8000: the network's load-balanced
//     (DNAT) connections.
func ZoneSG(key uint32) uint16 {
	if key&(1<<23) != 0 {
		return 0x7000 | uint16(key&0xfff)
	}
	return uint16(1 + (key-1)%0x6fff)
}

// ZoneLB is the conntrack zone of a network's load-balanced connections.
func ZoneLB(key uint32) uint16 { return ZoneSG(key) | 0x8000 }

// ZoneSNAT is the conntrack zone of a network's SNATed connections (app
// snat): the network's ZoneLB. A connection is either DNATed to a load
// balancer member (a VIP on its own network) or SNATed out of a router
// gateway, never both, so the two NATs never meet on one connection;
// and it is not the security groups' zone, which committed the
// connection without NAT before.
func ZoneSNAT(key uint32) uint16 { return ZoneLB(key) }

// TunSNATReturn is the tunnel key (tun_id) that carries SNAT return
// traffic of network key from the external IP's ARP owner to the
// hypervisor holding the port block: 1<<24 | key, above every network's
// GRE key (< 1<<23) and VLAN key (1<<23 | VLAN id).
func TunSNATReturn(key uint32) uint64 { return 1<<24 | uint64(key) }
