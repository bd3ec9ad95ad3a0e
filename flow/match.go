package flow

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// MatchField is one field of a match. Mask 0 means an exact match.
type MatchField struct {
	F     Field
	Value uint64
	Mask  uint64
}

// Match is a set of match fields. Normalize sorts it into canonical order.
type Match []MatchField

// M starts a match; chain the helpers below.
func M() Match { return nil }

// Set adds or replaces an exact match on f.
func (m Match) Set(f Field, v uint64) Match { return m.SetMasked(f, v, 0) }

// SetMasked adds or replaces a masked match on f.
func (m Match) SetMasked(f Field, v, mask uint64) Match {
	out := make(Match, 0, len(m)+1)
	for _, x := range m {
		if x.F != f {
			out = append(out, x)
		}
	}
	return append(out, MatchField{F: f, Value: v, Mask: mask}).Normalize()
}

// IPv4DstIn matches destinations in IPv4 prefix p (a /0 matches any:
// the field is left out).
func (m Match) IPv4DstIn(p netip.Prefix) Match { return m.ipv4In(IPv4Dst, p) }

// IPv4SrcIn matches nw_src in prefix p (nothing added for a /0).
func (m Match) IPv4SrcIn(p netip.Prefix) Match { return m.ipv4In(IPv4Src, p) }

func (m Match) ipv4In(f Field, p netip.Prefix) Match {
	if p.Bits() <= 0 {
		return m
	}
	a := p.Masked().Addr().As4()
	v := uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
	return m.SetMasked(f, v, uint64(^uint32(0)<<(32-p.Bits())))
}

// InPort, EthType, etc. are shorthands used by apps.
func (m Match) InPort(p uint32) Match     { return m.Set(InPort, uint64(p)) }
func (m Match) EthDst(a MAC) Match        { return m.Set(EthDst, uint64(a)) }
func (m Match) EthSrc(a MAC) Match        { return m.Set(EthSrc, uint64(a)) }
func (m Match) EthType(t uint16) Match    { return m.Set(EthType, uint64(t)) }
func (m Match) Reg(n int, v uint32) Match { return m.Set(Reg(n), uint64(v)) }

// Get returns the field's entry, if present.
func (m Match) Get(f Field) (MatchField, bool) {
	for _, x := range m {
		if x.F == f {
			return x, true
		}
	}
	return MatchField{}, false
}

// Normalize returns the canonical form: fields sorted, full masks dropped,
// value bits outside the mask cleared. It sorts in place.
func (m Match) Normalize() Match {
	for i := range m {
		x := &m[i]
		full := x.F.FullMask()
		x.Value &= full
		x.Mask &= full
		if x.Mask == full {
			x.Mask = 0
		}
		if x.Mask != 0 {
			x.Value &= x.Mask
		}
	}
	sort.Slice(m, func(i, j int) bool { return m[i].F < m[j].F })
	return m
}

// Validate checks field validity, duplicates, masks and prerequisites.
// It does not allocate, so it can run on the packet-in path.
func (m Match) Validate() error {
	for i, x := range m {
		if !x.F.Valid() {
			return fmt.Errorf("flow: unknown match field %d", x.F)
		}
		if x.Mask != 0 && !x.F.Def().Maskable {
			return fmt.Errorf("flow: field %s cannot be masked", x.F)
		}
		for _, y := range m[:i] {
			if y.F == x.F {
				return fmt.Errorf("flow: field %s matched twice", x.F)
			}
		}
		for _, p := range x.F.Def().Prereq {
			got, ok := m.Get(p.F)
			if !ok || got.Mask != 0 || got.Value != p.Value {
				return fmt.Errorf("flow: field %s needs %s=%s", x.F, p.F, p.F.FormatValue(p.Value))
			}
		}
	}
	return nil
}

// String prints the match in ovs-ofctl style ("ip,in_port=1,nw_dst=10.0.0.1").
func (m Match) String() string {
	var parts []string
	et, hasET := m.Get(EthType)
	proto, hasProto := m.Get(IPProto)
	skipET, skipProto := false, false
	if hasET && et.Mask == 0 {
		switch et.Value {
		case EthTypeIPv4:
			skipET = true
			if hasProto {
				switch proto.Value {
				case ProtoTCP:
					parts, skipProto = append(parts, "tcp"), true
				case ProtoUDP:
					parts, skipProto = append(parts, "udp"), true
				case ProtoICMP:
					parts, skipProto = append(parts, "icmp"), true
				default:
					parts = append(parts, "ip")
				}
			} else {
				parts = append(parts, "ip")
			}
		case EthTypeARP:
			skipET = true
			parts = append(parts, "arp")
		}
	}
	for _, x := range m {
		if (x.F == EthType && skipET) || (x.F == IPProto && skipProto) {
			continue
		}
		parts = append(parts, x.String())
	}
	return strings.Join(parts, ",")
}

func (x MatchField) String() string {
	if x.F == CTState {
		mask := x.Mask
		if mask == 0 {
			mask = x.F.FullMask()
		}
		return "ct_state=" + formatCTState(x.Value, mask)
	}
	if x.F == VlanVID && x.Mask == 0 && x.Value&VlanPresent == 0 {
		return "vlan_tci=0x0000/0x1fff"
	}
	s := x.F.String() + "=" + x.F.FormatValue(x.Value)
	if x.Mask != 0 {
		s += "/" + x.F.FormatValue(x.Mask)
	}
	return s
}
