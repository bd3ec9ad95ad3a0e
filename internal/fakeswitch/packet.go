package fakeswitch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/nimbus-sdn/nimbus/flow"
)

// VLAN is one 802.1Q tag.
type VLAN struct {
	TPID uint16 // 0x8100 (or 0x88a8)
	VID  uint16 // 12 bits
	PCP  uint8
}

// Packet is the header fields the model tracks: the pipeline metadata
// (in_port, tunnel id, metadata, registers, conntrack fields) and the
// parsed headers of an Ethernet frame with up to two VLAN tags and an IPv4
// (TCP, UDP, ICMP) or ARP payload. Fields that do not apply to the frame
// (the TCP ports of an ARP frame) are zero; matching or setting them
// follows OpenFlow's prerequisites (see Get).
type Packet struct {
	InPort   uint32
	TunnelID uint64
	TunSrc   flow.IPv4
	TunDst   flow.IPv4
	Metadata uint64
	Regs     [8]uint32
	CTState  uint32
	CTZone   uint16
	CTMark   uint32
	// ConjID is set only during the second lookup of a complete
	// conjunctive match (see Walk); it is 0 otherwise.
	ConjID uint32

	EthSrc, EthDst flow.MAC
	// VLANs are the tags, outermost first. dl_vlan and dl_vlan_pcp match
	// and set the outermost.
	VLANs []VLAN
	// EthType is the type after the tags (dl_type).
	EthType uint16

	IPProto  uint8
	IPv4Src  flow.IPv4
	IPv4Dst  flow.IPv4
	IPDSCP   uint8
	TTL      uint8
	TPSrc    uint16 // TCP or UDP source port, by IPProto
	TPDst    uint16
	ICMPType uint8
	ICMPCode uint8

	ARPOp  uint16
	ARPSpa flow.IPv4
	ARPTpa flow.IPv4
	ARPSha flow.MAC
	ARPTha flow.MAC
}

// Clone returns a deep copy (the VLAN stack is not shared).
func (p Packet) Clone() Packet {
	p.VLANs = append([]VLAN(nil), p.VLANs...)
	return p
}

// prereqOK reports whether the packet has the field f: OpenFlow's
// prerequisites (dl_type, nw_proto), and a VLAN tag for dl_vlan_pcp.
func (p *Packet) prereqOK(f flow.Field) bool {
	if f == flow.VlanPCP {
		return len(p.VLANs) > 0
	}
	for _, pr := range f.Def().Prereq {
		v, _ := p.Get(pr.F)
		if v != pr.Value {
			return false
		}
	}
	return true
}

// Get returns the value of f as a match sees it. ok is false when the
// packet lacks the field (its prerequisites fail); a match on such a field
// never matches. dl_vlan reads flow.VlanPresent|vid for a tagged frame
// and 0 for an untagged one, as OpenFlow 1.3's OFPVID_PRESENT encoding.
func (p *Packet) Get(f flow.Field) (v uint64, ok bool) {
	switch f {
	case flow.InPort:
		return uint64(p.InPort), true
	case flow.Metadata:
		return p.Metadata, true
	case flow.TunnelID:
		return p.TunnelID, true
	case flow.TunIPv4Src:
		return uint64(p.TunSrc), true
	case flow.TunIPv4Dst:
		return uint64(p.TunDst), true
	case flow.Reg0, flow.Reg1, flow.Reg2, flow.Reg3, flow.Reg4, flow.Reg5, flow.Reg6, flow.Reg7:
		return uint64(p.Regs[f-flow.Reg0]), true
	case flow.CTState:
		return uint64(p.CTState), true
	case flow.CTZone:
		return uint64(p.CTZone), true
	case flow.CTMark:
		return uint64(p.CTMark), true
	case flow.ConjID:
		return uint64(p.ConjID), true
	case flow.EthSrc:
		return uint64(p.EthSrc), true
	case flow.EthDst:
		return uint64(p.EthDst), true
	case flow.EthType:
		return uint64(p.EthType), true
	case flow.VlanVID:
		if len(p.VLANs) == 0 {
			return 0, true
		}
		return flow.VlanPresent | uint64(p.VLANs[0].VID), true
	}
	if !p.prereqOK(f) {
		return 0, false
	}
	switch f {
	case flow.VlanPCP:
		return uint64(p.VLANs[0].PCP), true
	case flow.IPProto:
		return uint64(p.IPProto), true
	case flow.IPv4Src:
		return uint64(p.IPv4Src), true
	case flow.IPv4Dst:
		return uint64(p.IPv4Dst), true
	case flow.IPDSCP:
		return uint64(p.IPDSCP), true
	case flow.IPTTL:
		return uint64(p.TTL), true
	case flow.TCPSrc, flow.UDPSrc:
		return uint64(p.TPSrc), true
	case flow.TCPDst, flow.UDPDst:
		return uint64(p.TPDst), true
	case flow.ICMPv4Type:
		return uint64(p.ICMPType), true
	case flow.ICMPv4Code:
		return uint64(p.ICMPCode), true
	case flow.ARPOp:
		return uint64(p.ARPOp), true
	case flow.ARPSpa:
		return uint64(p.ARPSpa), true
	case flow.ARPTpa:
		return uint64(p.ARPTpa), true
	case flow.ARPSha:
		return uint64(p.ARPSha), true
	case flow.ARPTha:
		return uint64(p.ARPTha), true
	}
	return 0, false
}

// errNoField reports a set on a field the packet does not have.
var errNoField = errors.New("fakeswitch: packet lacks the field")

// Set writes v into f (full width). It returns errNoField when the packet
// lacks the field: Open vSwitch then ignores the set_field ("unmet
// prerequisites"), and so does the walk. Setting dl_vlan on an untagged
// frame is likewise ignored (OpenFlow 1.2+ set_field never pushes a tag).
func (p *Packet) Set(f flow.Field, v uint64) error {
	v &= f.FullMask()
	switch f {
	case flow.InPort:
		p.InPort = uint32(v)
	case flow.Metadata:
		p.Metadata = v
	case flow.TunnelID:
		p.TunnelID = v
	case flow.TunIPv4Src:
		p.TunSrc = flow.IPv4(v)
	case flow.TunIPv4Dst:
		p.TunDst = flow.IPv4(v)
	case flow.Reg0, flow.Reg1, flow.Reg2, flow.Reg3, flow.Reg4, flow.Reg5, flow.Reg6, flow.Reg7:
		p.Regs[f-flow.Reg0] = uint32(v)
	case flow.CTState:
		p.CTState = uint32(v)
	case flow.CTZone:
		p.CTZone = uint16(v)
	case flow.CTMark:
		p.CTMark = uint32(v)
	case flow.ConjID:
		return fmt.Errorf("fakeswitch: conj_id is read-only (OVS refuses to set it)")
	case flow.EthSrc:
		p.EthSrc = flow.MAC(v)
	case flow.EthDst:
		p.EthDst = flow.MAC(v)
	case flow.EthType:
		p.EthType = uint16(v)
	case flow.VlanVID:
		if len(p.VLANs) == 0 {
			return errNoField
		}
		p.VLANs[0].VID = uint16(v & 0xfff)
	default:
		if !p.prereqOK(f) {
			return errNoField
		}
		switch f {
		case flow.VlanPCP:
			p.VLANs[0].PCP = uint8(v & 7)
		case flow.IPProto:
			p.IPProto = uint8(v)
		case flow.IPv4Src:
			p.IPv4Src = flow.IPv4(v)
		case flow.IPv4Dst:
			p.IPv4Dst = flow.IPv4(v)
		case flow.IPDSCP:
			p.IPDSCP = uint8(v)
		case flow.IPTTL:
			p.TTL = uint8(v)
		case flow.TCPSrc, flow.UDPSrc:
			p.TPSrc = uint16(v)
		case flow.TCPDst, flow.UDPDst:
			p.TPDst = uint16(v)
		case flow.ICMPv4Type:
			p.ICMPType = uint8(v)
		case flow.ICMPv4Code:
			p.ICMPCode = uint8(v)
		case flow.ARPOp:
			p.ARPOp = uint16(v)
		case flow.ARPSpa:
			p.ARPSpa = flow.IPv4(v)
		case flow.ARPTpa:
			p.ARPTpa = flow.IPv4(v)
		case flow.ARPSha:
			p.ARPSha = flow.MAC(v)
		case flow.ARPTha:
			p.ARPTha = flow.MAC(v)
		default:
			return fmt.Errorf("fakeswitch: cannot set field %s", f)
		}
	}
	return nil
}

// Matches reports whether the packet matches m (masked fields compare
// under their mask; a field the packet lacks never matches).
func (p *Packet) Matches(m flow.Match) bool {
	for _, x := range m {
		v, ok := p.Get(x.F)
		if !ok {
			return false
		}
		mask := x.Mask
		if mask == 0 {
			mask = x.F.FullMask()
		}
		if v&mask != x.Value&mask {
			return false
		}
	}
	return true
}

// String prints the header fields that are set, in ofproto/trace's
// microflow syntax (without pipeline registers that are zero).
func (p Packet) String() string {
	var parts []string
	add := func(f string, a ...any) { parts = append(parts, fmt.Sprintf(f, a...)) }
	add("in_port=%s", flow.PortString(p.InPort))
	if p.TunnelID != 0 {
		add("tun_id=0x%x", p.TunnelID)
	}
	if p.Metadata != 0 {
		add("metadata=0x%x", p.Metadata)
	}
	for i, r := range p.Regs {
		if r != 0 {
			add("reg%d=0x%x", i, r)
		}
	}
	if p.CTState != 0 {
		add("ct_state=0x%x", p.CTState)
	}
	if p.CTZone != 0 {
		add("ct_zone=%d", p.CTZone)
	}
	if p.CTMark != 0 {
		add("ct_mark=0x%x", p.CTMark)
	}
	parts = append(parts, p.WireString())
	return strings.Join(parts, ",")
}

// WireString prints only what is on the wire: Ethernet, tags, and the
// IPv4/L4 or ARP header (in ofproto/trace microflow syntax).
func (p Packet) WireString() string {
	var parts []string
	add := func(f string, a ...any) { parts = append(parts, fmt.Sprintf(f, a...)) }
	add("dl_src=%s,dl_dst=%s", p.EthSrc, p.EthDst)
	for i, v := range p.VLANs {
		if i == 0 {
			add("dl_vlan=%d,dl_vlan_pcp=%d", v.VID, v.PCP)
		} else {
			add("vlan%d=%d/%d", i, v.VID, v.PCP)
		}
	}
	add("dl_type=0x%04x", p.EthType)
	switch p.EthType {
	case flow.EthTypeIPv4:
		add("nw_src=%s,nw_dst=%s,nw_proto=%d,nw_ttl=%d", p.IPv4Src, p.IPv4Dst, p.IPProto, p.TTL)
		if p.IPDSCP != 0 {
			add("nw_tos=%d", p.IPDSCP<<2)
		}
		switch p.IPProto {
		case flow.ProtoTCP:
			add("tcp_src=%d,tcp_dst=%d", p.TPSrc, p.TPDst)
		case flow.ProtoUDP:
			add("udp_src=%d,udp_dst=%d", p.TPSrc, p.TPDst)
		case flow.ProtoICMP:
			add("icmp_type=%d,icmp_code=%d", p.ICMPType, p.ICMPCode)
		}
	case flow.EthTypeARP:
		add("arp_op=%d,arp_spa=%s,arp_tpa=%s,arp_sha=%s,arp_tha=%s", p.ARPOp, p.ARPSpa, p.ARPTpa, p.ARPSha, p.ARPTha)
	}
	return strings.Join(parts, ",")
}

// Parse reads an Ethernet frame: up to two 802.1Q/802.1ad tags, then
// IPv4 (with TCP, UDP or ICMP) or ARP. Other payloads keep only the
// Ethernet fields. A truncated header is an error.
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) < 14 {
		return p, fmt.Errorf("fakeswitch: frame of %d bytes is shorter than an Ethernet header", len(b))
	}
	p.EthDst = flow.MACFromBytes(b[0:6])
	p.EthSrc = flow.MACFromBytes(b[6:12])
	et := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	for (et == 0x8100 || et == 0x88a8) && len(p.VLANs) < 2 {
		if len(b) < 4 {
			return p, errors.New("fakeswitch: truncated VLAN tag")
		}
		tci := binary.BigEndian.Uint16(b[0:2])
		p.VLANs = append(p.VLANs, VLAN{TPID: et, VID: tci & 0xfff, PCP: uint8(tci >> 13)})
		et = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	p.EthType = et
	switch et {
	case flow.EthTypeIPv4:
		if len(b) < 20 || b[0]>>4 != 4 {
			return p, errors.New("fakeswitch: truncated or bad IPv4 header")
		}
		ihl := int(b[0]&0xf) * 4
		if ihl < 20 || len(b) < ihl {
			return p, errors.New("fakeswitch: bad IPv4 header length")
		}
		p.IPDSCP = b[1] >> 2
		p.TTL = b[8]
		p.IPProto = b[9]
		p.IPv4Src = flow.IPv4(binary.BigEndian.Uint32(b[12:16]))
		p.IPv4Dst = flow.IPv4(binary.BigEndian.Uint32(b[16:20]))
		l4 := b[ihl:]
		fragOff := binary.BigEndian.Uint16(b[6:8]) & 0x1fff
		if fragOff != 0 {
			return p, nil // later fragments carry no L4 header
		}
		switch p.IPProto {
		case flow.ProtoTCP, flow.ProtoUDP:
			if len(l4) < 4 {
				return p, errors.New("fakeswitch: truncated L4 header")
			}
			p.TPSrc = binary.BigEndian.Uint16(l4[0:2])
			p.TPDst = binary.BigEndian.Uint16(l4[2:4])
		case flow.ProtoICMP:
			if len(l4) < 2 {
				return p, errors.New("fakeswitch: truncated ICMP header")
			}
			p.ICMPType, p.ICMPCode = l4[0], l4[1]
		}
	case flow.EthTypeARP:
		if len(b) < 28 {
			return p, errors.New("fakeswitch: truncated ARP packet")
		}
		if binary.BigEndian.Uint16(b[0:2]) != 1 || binary.BigEndian.Uint16(b[2:4]) != flow.EthTypeIPv4 || b[4] != 6 || b[5] != 4 {
			return p, errors.New("fakeswitch: ARP packet is not Ethernet/IPv4")
		}
		p.ARPOp = binary.BigEndian.Uint16(b[6:8])
		p.ARPSha = flow.MACFromBytes(b[8:14])
		p.ARPSpa = flow.IPv4(binary.BigEndian.Uint32(b[14:18]))
		p.ARPTha = flow.MACFromBytes(b[18:24])
		p.ARPTpa = flow.IPv4(binary.BigEndian.Uint32(b[24:28]))
	}
	return p, nil
}
