// Package model holds the network model: the typed records Nimbus keeps
// in etcd (projects, networks, subnets, ports, routers, floating IPs,
// security groups, load balancers, chassis) and the immutable Snapshot
// apps compute flows from. It does no I/O.
package model

import (
	"fmt"
	"sort"
)

// Kind names a record type; it is also the etcd key segment.
type Kind string

// Record kinds.
const (
	KindProject       Kind = "projects"
	KindNetwork       Kind = "networks"
	KindSubnet        Kind = "subnets"
	KindPort          Kind = "ports"
	KindRouter        Kind = "routers"
	KindFloatingIP    Kind = "floatingips"
	KindSecurityGroup Kind = "security-groups"
	KindSGRule        Kind = "security-group-rules"
	KindPool          Kind = "lb-pools"
	KindVIP           Kind = "lb-vips"
	KindMember        Kind = "lb-members"
	KindHealthMonitor Kind = "lb-health-monitors"
	KindChassis       Kind = "chassis"
	KindLink          Kind = "links"
	// SNAT port blocks and ARP owners (app/snat): written by node agents
	// under their etcd lease, so they vanish when a hypervisor dies.
	KindSNATBlock Kind = "snat-blocks"
	KindSNATOwner Kind = "snat-owners"
)

// Kinds lists every kind, in load order.
var Kinds = []Kind{KindProject, KindNetwork, KindSubnet, KindPort, KindRouter, KindFloatingIP, KindSecurityGroup,
	KindSGRule, KindPool, KindVIP, KindMember, KindHealthMonitor, KindChassis, KindLink,
	KindSNATBlock, KindSNATOwner}

// Record is implemented by every model type.
type Record interface {
	Kind() Kind
	Key() string // the record's id within its kind
}

// Base carries the fields every Neutron resource has.
type Base struct {
	ID          string `json:"id"`
	ProjectID   string `json:"project_id,omitempty"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	CreatedAt   string `json:"created_at,omitempty"`
	UpdatedAt   string `json:"updated_at,omitempty"`
	RevisionNo  int64  `json:"revision_number,omitempty"`
}

// Key returns the id.
func (b *Base) Key() string { return b.ID }

// Project is a tenant.
type Project struct {
	Base
}

// Network segmentation types.
const (
	NetVLAN  = "vlan"
	NetGRE   = "gre"
	NetFlat  = "flat"
	NetLocal = "local"
)

// Network is a tenant or external L2 network.
type Network struct {
	Base
	AdminStateUp    bool   `json:"admin_state_up"`
	Shared          bool   `json:"shared"`
	External        bool   `json:"router:external"`
	NetworkType     string `json:"provider:network_type"`
	PhysicalNetwork string `json:"provider:physical_network,omitempty"`
	SegmentationID  int    `json:"provider:segmentation_id,omitempty"`
	MTU             int    `json:"mtu"`
	PortSecurity    bool   `json:"port_security_enabled"`
}

// Pool is an IP allocation range.
type Pool struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// HostRoute is a static route handed out by DHCP (option 121).
type HostRoute struct {
	Destination string `json:"destination"`
	NextHop     string `json:"nexthop"`
}

// Subnet is an IPv4 subnet of a network.
type Subnet struct {
	Base
	NetworkID       string      `json:"network_id"`
	IPVersion       int         `json:"ip_version"`
	CIDR            string      `json:"cidr"`
	GatewayIP       string      `json:"gateway_ip,omitempty"`
	AllocationPools []Pool      `json:"allocation_pools"`
	DNSNameservers  []string    `json:"dns_nameservers"`
	HostRoutes      []HostRoute `json:"host_routes"`
	EnableDHCP      bool        `json:"enable_dhcp"`
	// IPv6RAMode and IPv6AddressMode are Neutron's IPv6 modes (slaac,
	// dhcpv6-stateful, dhcpv6-stateless); empty for IPv4.
	IPv6RAMode      string `json:"ipv6_ra_mode,omitempty"`
	IPv6AddressMode string `json:"ipv6_address_mode,omitempty"`
}

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// AddressPair is an allowed address pair.
type AddressPair struct {
	IPAddress  string `json:"ip_address"`
	MACAddress string `json:"mac_address,omitempty"`
}

// Port is a Neutron port: a VM interface, router interface, gateway...
type Port struct {
	Base
	NetworkID           string            `json:"network_id"`
	MACAddress          string            `json:"mac_address"`
	FixedIPs            []FixedIP         `json:"fixed_ips"`
	DeviceID            string            `json:"device_id"`
	DeviceOwner         string            `json:"device_owner"`
	AdminStateUp        bool              `json:"admin_state_up"`
	Status              string            `json:"status,omitempty"`
	HostID              string            `json:"binding:host_id,omitempty"`
	Profile             map[string]any    `json:"binding:profile,omitempty"`
	VIFType             string            `json:"binding:vif_type,omitempty"`
	PortSecurity        bool              `json:"port_security_enabled"`
	AllowedAddressPairs []AddressPair     `json:"allowed_address_pairs"`
	SecurityGroups      []string          `json:"security_groups"`
	Extra               map[string]string `json:"extra,omitempty"`
}

// ExternalGateway is a router's gateway to an external network.
type ExternalGateway struct {
	NetworkID        string    `json:"network_id"`
	EnableSNAT       bool      `json:"enable_snat"`
	ExternalFixedIPs []FixedIP `json:"external_fixed_ips,omitempty"`
}

// Router is a distributed router.
type Router struct {
	Base
	AdminStateUp bool             `json:"admin_state_up"`
	Gateway      *ExternalGateway `json:"external_gateway_info"`
	// Interfaces are the ids of the router's interface ports.
	Interfaces []string `json:"interfaces,omitempty"`
	// Routes are the router's extra routes (Neutron's extraroute).
	Routes []Route `json:"routes,omitempty"`
}

// Route is one extra route of a router: packets to Destination (a CIDR)
// go to NextHop, an address on one of the router's subnets.
type Route struct {
	Destination string `json:"destination"`
	NextHop     string `json:"nexthop"`
}

// FloatingIP maps an external address to a port's fixed IP.
type FloatingIP struct {
	Base
	FloatingNetworkID string `json:"floating_network_id"`
	FloatingIPAddress string `json:"floating_ip_address"`
	FloatingPortID    string `json:"floating_port_id,omitempty"`
	PortID            string `json:"port_id,omitempty"`
	FixedIPAddress    string `json:"fixed_ip_address,omitempty"`
	RouterID          string `json:"router_id,omitempty"`
}

// SecurityGroup is a set of rules.
type SecurityGroup struct {
	Base
}

// SGRule is one security-group rule.
type SGRule struct {
	Base
	SecurityGroupID string `json:"security_group_id"`
	Direction       string `json:"direction"` // ingress or egress
	EtherType       string `json:"ethertype"`
	Protocol        string `json:"protocol,omitempty"`
	PortRangeMin    *int   `json:"port_range_min"`
	PortRangeMax    *int   `json:"port_range_max"`
	RemoteIPPrefix  string `json:"remote_ip_prefix,omitempty"`
	RemoteGroupID   string `json:"remote_group_id,omitempty"`
}

// LBPool is an LBaaS v1 pool.
type LBPool struct {
	Base
	SubnetID         string   `json:"subnet_id"`
	Protocol         string   `json:"protocol"`
	LBMethod         string   `json:"lb_method"`
	AdminStateUp     bool     `json:"admin_state_up"`
	HealthMonitorIDs []string `json:"health_monitors"`
	VIPID            string   `json:"vip_id,omitempty"`
}

// LBVIP is an LBaaS v1 VIP.
type LBVIP struct {
	Base
	SubnetID     string `json:"subnet_id"`
	Address      string `json:"address"`
	PortID       string `json:"port_id"`
	ProtocolPort int    `json:"protocol_port"`
	Protocol     string `json:"protocol"`
	PoolID       string `json:"pool_id"`
	AdminStateUp bool   `json:"admin_state_up"`
	// SessionPersistence is LBaaS v1's session_persistence (nil: none).
	SessionPersistence *SessionPersistence `json:"session_persistence,omitempty"`
}

// SessionPersistence is a VIP's session persistence: Type SOURCE_IP,
// HTTP_COOKIE or APP_COOKIE (with CookieName).
type SessionPersistence struct {
	Type       string `json:"type"`
	CookieName string `json:"cookie_name,omitempty"`
}

// LBMember is an LBaaS v1 member.
type LBMember struct {
	Base
	PoolID       string `json:"pool_id"`
	Address      string `json:"address"`
	ProtocolPort int    `json:"protocol_port"`
	Weight       int    `json:"weight"`
	AdminStateUp bool   `json:"admin_state_up"`
	Status       string `json:"status,omitempty"`
}

// LBHealthMonitor is an LBaaS v1 health monitor.
type LBHealthMonitor struct {
	Base
	Type          string `json:"type"`
	Delay         int    `json:"delay"`
	Timeout       int    `json:"timeout"`
	MaxRetries    int    `json:"max_retries"`
	HTTPMethod    string `json:"http_method,omitempty"`
	URLPath       string `json:"url_path,omitempty"`
	ExpectedCodes string `json:"expected_codes,omitempty"`
	AdminStateUp  bool   `json:"admin_state_up"`
}

// Chassis is a hypervisor running the node agent.
type Chassis struct {
	Name     string `json:"name"`
	TunnelIP string `json:"tunnel_ip"`
	DPID     string `json:"dpid"`
	// Mappings maps physical networks to bridges ("physnet1": "br-phy").
	Mappings map[string]string `json:"bridge_mappings,omitempty"`
	// Interfaces maps the names of br-int's interfaces that carry an
	// external_ids:iface-id to that id (a Neutron port id), as the node
	// agent last read them from OVS.
	Interfaces map[string]string `json:"interfaces,omitempty"`
	// Ports maps the name of every interface of br-int's ports (tunnels,
	// patch ports, taps) that has an OpenFlow port number to it, as the
	// node agent last read them from OVS. Controllers bind ports to this
	// chassis from it, so what they compute does not depend on whether
	// this chassis's switch is connected to them. nil: an agent that does
	// not publish it.
	Ports map[string]uint32 `json:"ports,omitempty"`
}

// Key is the chassis name.
func (c *Chassis) Key() string { return c.Name }

// SNATBlock is a block of source ports of a router's external IP leased
// by one chassis for the SNAT of one tenant network's ports (app/snat):
// ports Index<<Bits .. (Index+1)<<Bits-1. The node agent holds it under
// its etcd lease (cluster/snatlease).
type SNATBlock struct {
	ExternalIP string `json:"external_ip"`
	Index      int    `json:"index"`
	Bits       int    `json:"bits"`
	Chassis    string `json:"chassis"`
	NetworkID  string `json:"network_id"`
}

// SNATBlockID is a block's record id: "<external ip>~<index>".
func SNATBlockID(extIP string, index int) string { return fmt.Sprintf("%s~%d", extIP, index) }

// Key is SNATBlockID.
func (b *SNATBlock) Key() string { return SNATBlockID(b.ExternalIP, b.Index) }

// SNATOwner is the chassis elected to answer ARP for an external IP and
// steer its SNAT return traffic (app/snat), held under its etcd lease.
type SNATOwner struct {
	ExternalIP string `json:"external_ip"`
	Chassis    string `json:"chassis"`
}

// Key is the external IP.
func (o *SNATOwner) Key() string { return o.ExternalIP }

func (*Project) Kind() Kind         { return KindProject }
func (*Network) Kind() Kind         { return KindNetwork }
func (*Subnet) Kind() Kind          { return KindSubnet }
func (*Port) Kind() Kind            { return KindPort }
func (*Router) Kind() Kind          { return KindRouter }
func (*FloatingIP) Kind() Kind      { return KindFloatingIP }
func (*SecurityGroup) Kind() Kind   { return KindSecurityGroup }
func (*SGRule) Kind() Kind          { return KindSGRule }
func (*LBPool) Kind() Kind          { return KindPool }
func (*LBVIP) Kind() Kind           { return KindVIP }
func (*LBMember) Kind() Kind        { return KindMember }
func (*LBHealthMonitor) Kind() Kind { return KindHealthMonitor }
func (*Chassis) Kind() Kind         { return KindChassis }
func (*SNATBlock) Kind() Kind       { return KindSNATBlock }
func (*SNATOwner) Kind() Kind       { return KindSNATOwner }

// New returns an empty record of kind k.
func New(k Kind) Record {
	switch k {
	case KindProject:
		return &Project{}
	case KindNetwork:
		return &Network{}
	case KindSubnet:
		return &Subnet{}
	case KindPort:
		return &Port{}
	case KindRouter:
		return &Router{}
	case KindFloatingIP:
		return &FloatingIP{}
	case KindSecurityGroup:
		return &SecurityGroup{}
	case KindSGRule:
		return &SGRule{}
	case KindPool:
		return &LBPool{}
	case KindVIP:
		return &LBVIP{}
	case KindMember:
		return &LBMember{}
	case KindHealthMonitor:
		return &LBHealthMonitor{}
	case KindChassis:
		return &Chassis{}
	case KindLink:
		return &Link{}
	case KindSNATBlock:
		return &SNATBlock{}
	case KindSNATOwner:
		return &SNATOwner{}
	}
	return nil
}

// Snapshot is an immutable view of the whole model at one store
// revision. Records in it must never be modified.
type Snapshot struct {
	Revision int64
	records  map[Kind]map[string]Record
}

// Empty is the snapshot before anything is loaded.
var Empty = &Snapshot{records: map[Kind]map[string]Record{}}

// NewSnapshot builds a snapshot from records (used by the store).
func NewSnapshot(rev int64, records map[Kind]map[string]Record) *Snapshot {
	return &Snapshot{Revision: rev, records: records}
}

// Get returns one record.
func (s *Snapshot) Get(k Kind, id string) (Record, bool) {
	r, ok := s.records[k][id]
	return r, ok
}

// List returns a kind's records sorted by id.
func (s *Snapshot) List(k Kind) []Record {
	m := s.records[k]
	out := make([]Record, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out
}

// Len counts a kind's records.
func (s *Snapshot) Len(k Kind) int { return len(s.records[k]) }

// With returns a new snapshot with one record set (r) or deleted (r nil);
// s is unchanged. Only the touched kind's map is copied.
func (s *Snapshot) With(rev int64, k Kind, id string, r Record) *Snapshot {
	recs := make(map[Kind]map[string]Record, len(s.records)+1)
	for kk, m := range s.records {
		recs[kk] = m
	}
	old := s.records[k]
	m := make(map[string]Record, len(old)+1)
	for kk, v := range old {
		m[kk] = v
	}
	if r == nil {
		delete(m, id)
	} else {
		m[id] = r
	}
	recs[k] = m
	return &Snapshot{Revision: rev, records: recs}
}

// Networks etc. are typed accessors.
func (s *Snapshot) Networks() []*Network { return typed[*Network](s, KindNetwork) }
func (s *Snapshot) Subnets() []*Subnet   { return typed[*Subnet](s, KindSubnet) }
func (s *Snapshot) Ports() []*Port       { return typed[*Port](s, KindPort) }
func (s *Snapshot) Routers() []*Router   { return typed[*Router](s, KindRouter) }
func (s *Snapshot) Chassis() []*Chassis  { return typed[*Chassis](s, KindChassis) }
func (s *Snapshot) Links() []*Link       { return typed[*Link](s, KindLink) }
func (s *Snapshot) SNATBlocks() []*SNATBlock {
	return typed[*SNATBlock](s, KindSNATBlock)
}
func (s *Snapshot) SNATOwners() []*SNATOwner {
	return typed[*SNATOwner](s, KindSNATOwner)
}

func typed[T Record](s *Snapshot, k Kind) []T {
	rs := s.List(k)
	out := make([]T, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.(T))
	}
	return out
}

// NewSnapshotAt returns s relabelled with revision rev (records shared).
func NewSnapshotAt(s *Snapshot, rev int64) *Snapshot {
	return &Snapshot{Revision: rev, records: s.records}
}
