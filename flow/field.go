// Package flow is Nimbus's wire-independent model of OpenFlow 1.3 flows,
// groups and meters. Apps build these values; ofproto encodes and decodes
// them; the reconciler diffs them. The package does no I/O.
package flow

import (
	"fmt"
	"net"
	"strings"
)

// Field identifies a match or set_field field Nimbus knows how to encode.
type Field uint8

// OXM/NXM classes used by Nimbus.
const (
	ClassNXM0  uint16 = 0x0000 // NXM_OF_*
	ClassNXM1  uint16 = 0x0001 // NXM_NX_* (registers, conntrack, tunnels)
	ClassBasic uint16 = 0x8000 // OFPXMC_OPENFLOW_BASIC
)

// FieldDef describes one field: its OXM header parts, width and the name
// ovs-ofctl uses for it in OpenFlow 1.3 output.
type FieldDef struct {
	Name     string
	Class    uint16
	Code     uint8 // OXM field number
	Bytes    int   // value width on the wire
	Maskable bool
	Format   Format
	Prereq   []Prereq // fields that must also be matched (OpenFlow prerequisites)
}

// Prereq is a required (field, value) pair.
type Prereq struct {
	F     Field
	Value uint64
}

// Format selects how a value is printed.
type Format uint8

const (
	FmtDec Format = iota
	FmtHex
	FmtMAC
	FmtIPv4
	FmtCTState
	FmtVLAN
)

// The fields, in canonical (printing and sorting) order.
const (
	InPort Field = iota + 1
	Metadata
	TunnelID
	TunIPv4Src
	TunIPv4Dst
	Reg0
	Reg1
	Reg2
	Reg3
	Reg4
	Reg5
	Reg6
	Reg7
	CTState
	CTZone
	CTMark
	ConjID
	EthSrc
	EthDst
	EthType
	VlanVID
	VlanPCP
	IPProto
	IPv4Src
	IPv4Dst
	IPDSCP
	IPTTL
	TCPSrc
	TCPDst
	UDPSrc
	UDPDst
	ICMPv4Type
	ICMPv4Code
	ARPOp
	ARPSpa
	ARPTpa
	ARPSha
	ARPTha
	numFields
)

// EtherTypes used as prerequisites.
const (
	EthTypeIPv4 = 0x0800
	EthTypeARP  = 0x0806
	EthTypeVLAN = 0x8100
)

// IP protocol numbers.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
)

var defs = [numFields]FieldDef{
	InPort:     {"in_port", ClassBasic, 0, 4, false, FmtDec, nil},
	Metadata:   {"metadata", ClassBasic, 2, 8, true, FmtHex, nil},
	TunnelID:   {"tun_id", ClassBasic, 38, 8, true, FmtHex, nil},
	TunIPv4Src: {"tun_src", ClassNXM1, 31, 4, true, FmtIPv4, nil},
	TunIPv4Dst: {"tun_dst", ClassNXM1, 32, 4, true, FmtIPv4, nil},
	Reg0:       {"reg0", ClassNXM1, 0, 4, true, FmtHex, nil},
	Reg1:       {"reg1", ClassNXM1, 1, 4, true, FmtHex, nil},
	Reg2:       {"reg2", ClassNXM1, 2, 4, true, FmtHex, nil},
	Reg3:       {"reg3", ClassNXM1, 3, 4, true, FmtHex, nil},
	Reg4:       {"reg4", ClassNXM1, 4, 4, true, FmtHex, nil},
	Reg5:       {"reg5", ClassNXM1, 5, 4, true, FmtHex, nil},
	Reg6:       {"reg6", ClassNXM1, 6, 4, true, FmtHex, nil},
	Reg7:       {"reg7", ClassNXM1, 7, 4, true, FmtHex, nil},
	CTState:    {"ct_state", ClassNXM1, 105, 4, true, FmtCTState, nil},
	CTZone:     {"ct_zone", ClassNXM1, 106, 2, false, FmtDec, nil},
	CTMark:     {"ct_mark", ClassNXM1, 107, 4, true, FmtHex, nil},
	ConjID:     {"conj_id", ClassNXM1, 37, 4, false, FmtDec, nil}, // NXM_NX_CONJ_ID: set only by a complete conjunctive match
	EthSrc:     {"dl_src", ClassBasic, 4, 6, true, FmtMAC, nil},
	EthDst:     {"dl_dst", ClassBasic, 3, 6, true, FmtMAC, nil},
	EthType:    {"dl_type", ClassBasic, 5, 2, false, FmtHex, nil},
	VlanVID:    {"dl_vlan", ClassBasic, 6, 2, true, FmtVLAN, nil},
	VlanPCP:    {"dl_vlan_pcp", ClassBasic, 7, 1, false, FmtDec, nil},
	IPProto:    {"nw_proto", ClassBasic, 10, 1, false, FmtDec, []Prereq{{EthType, EthTypeIPv4}}},
	IPv4Src:    {"nw_src", ClassBasic, 11, 4, true, FmtIPv4, []Prereq{{EthType, EthTypeIPv4}}},
	IPv4Dst:    {"nw_dst", ClassBasic, 12, 4, true, FmtIPv4, []Prereq{{EthType, EthTypeIPv4}}},
	IPDSCP:     {"ip_dscp", ClassBasic, 8, 1, false, FmtDec, []Prereq{{EthType, EthTypeIPv4}}},
	IPTTL:      {"nw_ttl", ClassNXM1, 29, 1, false, FmtDec, []Prereq{{EthType, EthTypeIPv4}}},
	TCPSrc:     {"tp_src", ClassBasic, 13, 2, true, FmtDec, []Prereq{{EthType, EthTypeIPv4}, {IPProto, ProtoTCP}}},
	TCPDst:     {"tp_dst", ClassBasic, 14, 2, true, FmtDec, []Prereq{{EthType, EthTypeIPv4}, {IPProto, ProtoTCP}}},
	UDPSrc:     {"udp_src", ClassBasic, 15, 2, true, FmtDec, []Prereq{{EthType, EthTypeIPv4}, {IPProto, ProtoUDP}}},
	UDPDst:     {"udp_dst", ClassBasic, 16, 2, true, FmtDec, []Prereq{{EthType, EthTypeIPv4}, {IPProto, ProtoUDP}}},
	ICMPv4Type: {"icmp_type", ClassBasic, 19, 1, false, FmtDec, []Prereq{{EthType, EthTypeIPv4}, {IPProto, ProtoICMP}}},
	ICMPv4Code: {"icmp_code", ClassBasic, 20, 1, false, FmtDec, []Prereq{{EthType, EthTypeIPv4}, {IPProto, ProtoICMP}}},
	ARPOp:      {"arp_op", ClassBasic, 21, 2, false, FmtDec, []Prereq{{EthType, EthTypeARP}}},
	ARPSpa:     {"arp_spa", ClassBasic, 22, 4, true, FmtIPv4, []Prereq{{EthType, EthTypeARP}}},
	ARPTpa:     {"arp_tpa", ClassBasic, 23, 4, true, FmtIPv4, []Prereq{{EthType, EthTypeARP}}},
	ARPSha:     {"arp_sha", ClassBasic, 24, 6, true, FmtMAC, []Prereq{{EthType, EthTypeARP}}},
	ARPTha:     {"arp_tha", ClassBasic, 25, 6, true, FmtMAC, []Prereq{{EthType, EthTypeARP}}},
}

// narrow gives the real width of fields narrower than their bytes on the
// wire.
var narrow = [numFields]int{VlanVID: 13, IPDSCP: 6}

// Def returns the definition of f. It panics on an unknown field, which is
// a programming error.
func (f Field) Def() *FieldDef {
	if f == 0 || f >= numFields {
		panic(fmt.Sprintf("flow: unknown field %d", f))
	}
	return &defs[f]
}

// Valid reports whether f names a known field.
func (f Field) Valid() bool { return f > 0 && f < numFields }

func (f Field) String() string {
	if !f.Valid() {
		return fmt.Sprintf("field%d", uint8(f))
	}
	return defs[f].Name
}

// FullMask is the all-ones mask for the field's width.
func (f Field) FullMask() uint64 {
	bits := 8 * f.Def().Bytes
	if narrow[f] != 0 {
		bits = narrow[f]
	}
	if bits >= 64 {
		return ^uint64(0)
	}
	return (uint64(1) << bits) - 1
}

// Reg returns register n (0..7).
func Reg(n int) Field { return Reg0 + Field(n) }

// FieldByOXM finds the field with the given class and code.
func FieldByOXM(class uint16, code uint8) (Field, bool) {
	for i := Field(1); i < numFields; i++ {
		if defs[i].Class == class && defs[i].Code == code {
			return i, true
		}
	}
	return 0, false
}

// FieldByName finds a field by its ovs-ofctl name.
func FieldByName(name string) (Field, bool) {
	for i := Field(1); i < numFields; i++ {
		if defs[i].Name == name {
			return i, true
		}
	}
	return 0, false
}

// CT state bits (NXM_NX_CT_STATE).
const (
	CTNew         = 1 << 0
	CTEstablished = 1 << 1
	CTRelated     = 1 << 2
	CTReply       = 1 << 3
	CTInvalid     = 1 << 4
	CTTracked     = 1 << 5
	CTSrcNAT      = 1 << 6
	CTDstNAT      = 1 << 7
)

var ctNames = []string{"new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"}

// VlanPresent is OFPVID_PRESENT: set in dl_vlan matches and set_fields for tagged frames.
const VlanPresent = 0x1000

// FormatValue prints v as the field's type.
func (f Field) FormatValue(v uint64) string {
	switch f.Def().Format {
	case FmtMAC:
		return MAC(v).String()
	case FmtIPv4:
		return IPv4(uint32(v)).String()
	case FmtHex:
		return fmt.Sprintf("0x%x", v)
	case FmtVLAN:
		return fmt.Sprintf("%d", v&0xfff)
	default:
		return fmt.Sprintf("%d", v)
	}
}

func formatCTState(v, m uint64) string {
	var b strings.Builder
	for i, n := range ctNames {
		bit := uint64(1) << i
		if m&bit == 0 {
			continue
		}
		if v&bit != 0 {
			b.WriteByte('+')
		} else {
			b.WriteByte('-')
		}
		b.WriteString(n)
	}
	return b.String()
}

// MAC is a 48-bit Ethernet address held in the low bits.
type MAC uint64

// ParseMAC parses "aa:bb:cc:dd:ee:ff".
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return 0, fmt.Errorf("flow: bad MAC %q", s)
	}
	return MACFromBytes(hw), nil
}

// MustMAC parses s or panics; for tests and constants.
func MustMAC(s string) MAC {
	m, err := ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// MACFromBytes reads 6 bytes.
func MACFromBytes(b []byte) MAC {
	_ = b[5]
	return MAC(uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5]))
}

func (m MAC) String() string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", byte(m>>40), byte(m>>32), byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}

// IsMulticast reports the group bit.
func (m MAC) IsMulticast() bool { return (m>>40)&1 == 1 }

// IPv4 is an IPv4 address in host order.
type IPv4 uint32

// ParseIPv4 parses a dotted quad.
func ParseIPv4(s string) (IPv4, error) {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return 0, fmt.Errorf("flow: bad IPv4 address %q", s)
	}
	return IPv4(uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])), nil
}

// MustIPv4 parses s or panics; for tests and constants.
func MustIPv4(s string) IPv4 {
	ip, err := ParseIPv4(s)
	if err != nil {
		panic(err)
	}
	return ip
}

func (ip IPv4) String() string {
	return fmt.Sprintf("%d.%d.%d.%d", byte(ip>>24), byte(ip>>16), byte(ip>>8), byte(ip))
}
