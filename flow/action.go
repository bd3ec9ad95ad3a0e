package flow

import (
	"fmt"
	"strings"
)

// Reserved OpenFlow port numbers.
const (
	PortInPort     uint32 = 0xfffffff8
	PortTable      uint32 = 0xfffffff9
	PortNormal     uint32 = 0xfffffffa
	PortFlood      uint32 = 0xfffffffb
	PortAll        uint32 = 0xfffffffc
	PortController uint32 = 0xfffffffd
	PortLocal      uint32 = 0xfffffffe
	PortAny        uint32 = 0xffffffff
	PortMax        uint32 = 0xffffff00
)

// MaxLenNoBuffer asks the switch to send the whole packet to the controller.
const MaxLenNoBuffer = 0xffff

// Action is one OpenFlow action. Implementations are comparable values so
// that whole action lists can be compared through their text.
type Action interface {
	String() string
	isAction()
}

// Output sends the packet to a port.
type Output struct {
	Port   uint32
	MaxLen uint16 // only for PortController
}

// GroupAction sends the packet to a group.
type GroupAction struct{ ID uint32 }

// PushVLAN pushes an 802.1Q header (follow with SetField VlanVID).
type PushVLAN struct{ EthType uint16 }

// PopVLAN pops the outer VLAN header.
type PopVLAN struct{}

// DecTTL decrements the IPv4 TTL.
type DecTTL struct{}

// SetField loads Value into a field; with Mask != 0 only the masked bits
// (a Nicira reg_load on the wire).
type SetField struct {
	F     Field
	Value uint64
	Mask  uint64
}

// Move copies NBits bits from Src[SrcOfs] to Dst[DstOfs] (Nicira reg_move).
type Move struct {
	Src, Dst       Field
	SrcOfs, DstOfs uint16
	NBits          uint16
}

// Resubmit re-runs the packet through Table (Nicira resubmit_table); InPort
// PortInPort keeps the packet's in_port.
type Resubmit struct {
	InPort uint32
	Table  uint8
}

// NAT flags.
const (
	NATSrc        = 1 << 0
	NATDst        = 1 << 1
	NATPersistent = 1 << 2
	NATProtoHash  = 1 << 3
	NATProtoRand  = 1 << 4
)

// NAT is the Nicira nat action, valid only inside CT. A zero NAT with no
// flags means "apply the NAT already recorded in the connection".
type NAT struct {
	Flags            uint16
	IPMin, IPMax     IPv4
	PortMin, PortMax uint16
}

// CTNoTable means ct() does not recirculate.
const CTNoTable = 0xff

// CT sends the packet through the connection tracker (Nicira ct action).
type CT struct {
	Commit bool
	Zone   uint16 // immediate zone
	// ZoneSrc, if set, takes the zone from this field (low 16 bits) instead.
	ZoneSrc Field
	Table   uint8 // recirculation table, CTNoTable for none
	NAT     *NAT
	// Exec holds the actions applied on commit (set_field of ct_mark).
	Exec []SetField
}

// Conjunction makes its flow one clause (1-based Clause of NClauses) of
// the conjunctive match ID (Nicira conjunction action). A flow with
// conjunction actions has no other actions and no instructions: it never
// acts by itself. When a packet matches, at one priority, a flow of every
// clause of a conjunction, the table is looked up again with conj_id set
// to ID, and the flow matching conj_id=ID acts. Flows of one clause cost a
// sum, not a product: (a|b) and (c|d|e) is 2+3 flows, not 2*3.
type Conjunction struct {
	ID       uint32
	Clause   uint8 // 1..NClauses
	NClauses uint8 // 2..64
}

func (a Conjunction) String() string {
	return fmt.Sprintf("conjunction(%d,%d/%d)", a.ID, a.Clause, a.NClauses)
}

// Multipath hash fields (NX_HASH_FIELDS_*) and link algorithms
// (NX_MP_ALG_*).
const (
	HashEthSrc      = 0
	HashSymmetricL4 = 1
	HashNwSrc       = 4
	HashNwDst       = 5
	MPModuloN       = 0
	MPHashThreshold = 1
	MPHRW           = 2
	MPIterHash      = 3
)

// Multipath hashes Fields (with Basis) and picks a link in 0..MaxLink with
// Algorithm, written into Dst[Ofs..Ofs+NBits-1] (Nicira multipath).
type Multipath struct {
	Fields    uint16
	Basis     uint16
	Algorithm uint16
	MaxLink   uint16
	Arg       uint32
	Dst       Field
	Ofs       uint16
	NBits     uint16
}

func (Multipath) isAction() {}

var mpFields = map[uint16]string{HashEthSrc: "eth_src", HashSymmetricL4: "symmetric_l4", 2: "symmetric_l3l4", 3: "symmetric_l3l4+udp",
	HashNwSrc: "nw_src", HashNwDst: "nw_dst", 6: "symmetric_l3"}
var mpAlgs = map[uint16]string{MPModuloN: "modulo_n", MPHashThreshold: "hash_threshold", MPHRW: "hrw", MPIterHash: "iter_hash"}

// String is ovs-ofctl's text: multipath(nw_src,0,hrw,3,0,reg6[16..31]).
func (a Multipath) String() string {
	f, ok := mpFields[a.Fields]
	if !ok {
		f = fmt.Sprint(a.Fields)
	}
	alg, ok := mpAlgs[a.Algorithm]
	if !ok {
		alg = fmt.Sprint(a.Algorithm)
	}
	dst := fmt.Sprintf("%s[%d..%d]", a.Dst, a.Ofs, a.Ofs+a.NBits-1)
	if int(a.NBits) == 8*a.Dst.Def().Bytes && a.Ofs == 0 {
		dst = a.Dst.String() + "[]"
	}
	return fmt.Sprintf("multipath(%s,%d,%s,%d,%d,%s)", f, a.Basis, alg, int(a.MaxLink)+1, a.Arg, dst)
}

func (Output) isAction()      {}
func (Conjunction) isAction() {}
func (GroupAction) isAction() {}
func (PushVLAN) isAction()    {}
func (PopVLAN) isAction()     {}
func (DecTTL) isAction()      {}
func (SetField) isAction()    {}
func (Move) isAction()        {}
func (Resubmit) isAction()    {}
func (CT) isAction()          {}

// PortString prints a port number as ovs-ofctl does.
func PortString(p uint32) string {
	switch p {
	case PortInPort:
		return "IN_PORT"
	case PortTable:
		return "TABLE"
	case PortNormal:
		return "NORMAL"
	case PortFlood:
		return "FLOOD"
	case PortAll:
		return "ALL"
	case PortController:
		return "CONTROLLER"
	case PortLocal:
		return "LOCAL"
	case PortAny:
		return "ANY"
	}
	return fmt.Sprintf("%d", p)
}

func (a Output) String() string {
	if a.Port == PortController {
		return fmt.Sprintf("CONTROLLER:%d", a.MaxLen)
	}
	if a.Port >= PortMax {
		return PortString(a.Port)
	}
	return fmt.Sprintf("output:%d", a.Port)
}
func (a GroupAction) String() string { return fmt.Sprintf("group:%d", a.ID) }
func (a PushVLAN) String() string    { return fmt.Sprintf("push_vlan:0x%04x", a.EthType) }
func (PopVLAN) String() string       { return "pop_vlan" }
func (DecTTL) String() string        { return "dec_ttl" }

func (a SetField) String() string {
	if a.Mask != 0 && a.Mask != a.F.FullMask() {
		return fmt.Sprintf("set_field:0x%x/0x%x->%s", a.Value&a.Mask, a.Mask, a.F)
	}
	if a.F == VlanVID {
		return fmt.Sprintf("set_field:%d->vlan_vid", a.Value)
	}
	return fmt.Sprintf("set_field:%s->%s", a.F.FormatValue(a.Value), a.F)
}

func (a Move) String() string {
	return fmt.Sprintf("move:%s[%d..%d]->%s[%d..%d]", a.Src, a.SrcOfs, a.SrcOfs+a.NBits-1, a.Dst, a.DstOfs, a.DstOfs+a.NBits-1)
}

func (a Resubmit) String() string {
	if a.InPort == PortInPort {
		return fmt.Sprintf("resubmit(,%d)", a.Table)
	}
	return fmt.Sprintf("resubmit(%s,%d)", PortString(a.InPort), a.Table)
}

func (n NAT) String() string {
	var b strings.Builder
	b.WriteString("nat")
	kind := ""
	if n.Flags&NATSrc != 0 {
		kind = "src"
	} else if n.Flags&NATDst != 0 {
		kind = "dst"
	}
	if kind == "" {
		return b.String()
	}
	b.WriteString("(" + kind)
	if n.IPMin != 0 {
		b.WriteString("=" + n.IPMin.String())
		if n.IPMax != 0 && n.IPMax != n.IPMin {
			b.WriteString("-" + n.IPMax.String())
		}
		if n.PortMin != 0 {
			fmt.Fprintf(&b, ":%d", n.PortMin)
			if n.PortMax != 0 && n.PortMax != n.PortMin {
				fmt.Fprintf(&b, "-%d", n.PortMax)
			}
		}
	}
	if n.Flags&NATPersistent != 0 {
		b.WriteString(",persistent")
	}
	if n.Flags&NATProtoHash != 0 {
		b.WriteString(",hash")
	}
	if n.Flags&NATProtoRand != 0 {
		b.WriteString(",random")
	}
	b.WriteString(")")
	return b.String()
}

func (a CT) String() string {
	var parts []string
	if a.Commit {
		parts = append(parts, "commit")
	}
	if a.ZoneSrc != 0 {
		parts = append(parts, fmt.Sprintf("zone=%s[0..15]", a.ZoneSrc))
	} else if a.Zone != 0 {
		parts = append(parts, fmt.Sprintf("zone=%d", a.Zone))
	}
	if a.Table != CTNoTable {
		parts = append(parts, fmt.Sprintf("table=%d", a.Table))
	}
	if a.NAT != nil {
		parts = append(parts, a.NAT.String())
	}
	if len(a.Exec) > 0 {
		var ex []string
		for _, s := range a.Exec {
			ex = append(ex, s.String())
		}
		parts = append(parts, "exec("+strings.Join(ex, ",")+")")
	}
	return "ct(" + strings.Join(parts, ",") + ")"
}

// ActionsString prints an action list; an empty list is "drop".
func ActionsString(as []Action) string {
	if len(as) == 0 {
		return "drop"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// Opaque stands for an action Nimbus does not model, seen in a dump. It
// never equals anything an app produces, so the reconciler rewrites it.
type Opaque struct{ Desc string }

func (Opaque) isAction()        {}
func (a Opaque) String() string { return "opaque(" + a.Desc + ")" }

// NAT is only valid nested in CT; it is an Action so nested lists decode.
func (NAT) isAction() {}

// EchoReply is the action list that answers an ICMP echo request in
// place: the reply from address from and MAC mac, back to the sender
// (addresses and MACs swapped, type 0) out of the ingress port. The
// flow must match icmp_type=8 (the ICMP prerequisite).
func EchoReply(from IPv4, mac MAC) []Action {
	return []Action{
		Move{Src: IPv4Src, Dst: IPv4Dst, NBits: 32},
		SetField{F: IPv4Src, Value: uint64(from)},
		Move{Src: EthSrc, Dst: EthDst, NBits: 48},
		SetField{F: EthSrc, Value: uint64(mac)},
		SetField{F: ICMPv4Type, Value: 0},
		Output{Port: PortInPort},
	}
}
