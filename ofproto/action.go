package ofproto

import (
	"fmt"
	"math/bits"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Standard action types.
const (
	atOutput   = 0
	atPushVLAN = 17
	atPopVLAN  = 18
	atGroup    = 22
	atDecNwTTL = 24
	atSetField = 25
	atExp      = 0xffff
)

// Nicira action subtypes.
const (
	nxastRegMove       = 6
	nxastRegLoad       = 7
	nxastMultipath     = 10
	nxastResubmitTable = 14
	nxastRegLoad2      = 33
	nxastConjunction   = 34
	nxastCT            = 35
	nxastNAT           = 36
)

// Instruction types.
const (
	itGoto          = 1
	itWriteMetadata = 2
	itWriteActions  = 3
	itApplyActions  = 4
	itClearActions  = 5
	itMeter         = 6
)

func nxmHeader(f flow.Field) uint32 {
	d := f.Def()
	return uint32(d.Class)<<16 | uint32(d.Code)<<9 | uint32(d.Bytes)
}

// nxmAliases are the NXM_OF_* and NXM_NX_* headers of fields that Nimbus
// knows by their OXM header. OVS writes these older headers in the
// reg_move and reg_load actions it dumps (and in set_field on in_port),
// even in OpenFlow 1.3, whichever header the flow was installed with.
var nxmAliases = []struct {
	class uint16
	code  uint8
	bytes int
	f     flow.Field
}{
	{flow.ClassNXM0, 0, 2, flow.InPort}, // NXM_OF_IN_PORT is 16 bits wide
	{flow.ClassNXM0, 1, 6, flow.EthDst},
	{flow.ClassNXM0, 2, 6, flow.EthSrc},
	{flow.ClassNXM0, 3, 2, flow.EthType},
	{flow.ClassNXM0, 6, 1, flow.IPProto},
	{flow.ClassNXM0, 7, 4, flow.IPv4Src},
	{flow.ClassNXM0, 8, 4, flow.IPv4Dst},
	{flow.ClassNXM0, 9, 2, flow.TCPSrc},
	{flow.ClassNXM0, 10, 2, flow.TCPDst},
	{flow.ClassNXM0, 11, 2, flow.UDPSrc},
	{flow.ClassNXM0, 12, 2, flow.UDPDst},
	{flow.ClassNXM0, 13, 1, flow.ICMPv4Type},
	{flow.ClassNXM0, 14, 1, flow.ICMPv4Code},
	{flow.ClassNXM0, 15, 2, flow.ARPOp},
	{flow.ClassNXM0, 16, 4, flow.ARPSpa},
	{flow.ClassNXM0, 17, 4, flow.ARPTpa},
	{flow.ClassNXM1, 16, 8, flow.TunnelID},
	{flow.ClassNXM1, 17, 6, flow.ARPSha},
	{flow.ClassNXM1, 18, 6, flow.ARPTha},
}

// fieldByHeader finds the field an OXM or NXM class and code name, and
// its width on the wire under that header.
func fieldByHeader(class uint16, code uint8) (flow.Field, int, bool) {
	if f, ok := flow.FieldByOXM(class, code); ok {
		return f, f.Def().Bytes, true
	}
	for _, a := range nxmAliases {
		if a.class == class && a.code == code {
			return a.f, a.bytes, true
		}
	}
	return 0, 0, false
}

func fieldByNXMHeader(h uint32) (flow.Field, bool) {
	f, w, ok := fieldByHeader(uint16(h>>16), uint8(h>>9&0x7f))
	if !ok || int(h&0xff) != w*(1+int(h>>8&1)) {
		return 0, false
	}
	return f, true
}

// decodedSetField puts a decoded set_field or load in canonical form, as
// ParseMatch does for matches: value and mask limited to the field's width,
// a full mask dropped, value bits outside the mask cleared. Decoding then
// re-encoding gives back the same action.
func decodedSetField(f flow.Field, v, m uint64) flow.SetField {
	full := f.FullMask()
	v &= full
	if m &= full; m == full {
		m = 0
	} else if m != 0 {
		v &= m
	}
	return flow.SetField{F: f, Value: v, Mask: m}
}

// nxmInPort is the NXM_OF_IN_PORT header: OVS refuses set_field on
// OXM_OF_IN_PORT and wants this 16-bit form instead.
const nxmInPort = 0x00000002

// port16 converts an OpenFlow 1.3 port number to its 16-bit form.
func port16(p uint32) (uint16, bool) {
	if p >= flow.PortMax {
		return uint16(p), true
	}
	return uint16(p), p < 0xff00
}

// port32 converts a 16-bit port number to OpenFlow 1.3's 32 bits.
func port32(p uint16) uint32 {
	if p >= 0xff00 {
		return uint32(p) | 0xffff0000
	}
	return uint32(p)
}

func startNX(b []byte, subtype uint16) ([]byte, int) {
	start := len(b)
	b = put16(b, atExp)
	b = put16(b, 0)
	b = put32(b, NiciraID)
	return put16(b, subtype), start
}

func finishAction(b []byte, start int) ([]byte, error) {
	b = pad8(b, start)
	if n := len(b) - start; n > maxMsgLen {
		return b[:start], fmt.Errorf("%w: action of %d bytes", ErrTooLarge, n)
	}
	be.PutUint16(b[start+2:], uint16(len(b)-start))
	return b, nil
}

// contiguous returns the offset and width of a contiguous mask.
func contiguous(mask uint64) (ofs, n int, ok bool) {
	if mask == 0 {
		return 0, 0, false
	}
	ofs = bits.TrailingZeros64(mask)
	n = bits.OnesCount64(mask)
	return ofs, n, (mask>>ofs)+1 == 1<<n || n == 64
}

// ValidateAction checks what the encoder cannot express.
func ValidateAction(a flow.Action) error {
	switch a := a.(type) {
	case flow.SetField:
		if !a.F.Valid() {
			return fmt.Errorf("%w: set_field on unknown field %d", ErrUnencodable, a.F)
		}
		if a.Mask&^a.F.FullMask() != 0 {
			return fmt.Errorf("%w: set_field mask 0x%x exceeds %s", ErrUnencodable, a.Mask, a.F)
		}
		if a.Mask != 0 && a.Mask != a.F.FullMask() {
			if _, _, ok := contiguous(a.Mask); !ok {
				return fmt.Errorf("%w: set_field mask 0x%x on %s is not contiguous", ErrUnencodable, a.Mask, a.F)
			}
		} else if a.F == flow.InPort {
			if _, ok := port16(uint32(a.Value)); !ok {
				return fmt.Errorf("%w: set_field:%d->in_port does not fit OVS's 16-bit in_port", ErrUnencodable, a.Value)
			}
		}
	case flow.Move:
		if !a.Src.Valid() || !a.Dst.Valid() || a.NBits == 0 ||
			int(a.SrcOfs+a.NBits) > 8*a.Src.Def().Bytes || int(a.DstOfs+a.NBits) > 8*a.Dst.Def().Bytes {
			return fmt.Errorf("%w: bad move %s", ErrUnencodable, a)
		}
	case flow.CT:
		if a.ZoneSrc != 0 && !a.ZoneSrc.Valid() {
			return fmt.Errorf("%w: ct zone from unknown field", ErrUnencodable)
		}
		for _, e := range a.Exec {
			if err := ValidateAction(e); err != nil {
				return err
			}
		}
	case flow.Conjunction:
		if a.NClauses < 2 || a.NClauses > 64 || a.Clause < 1 || a.Clause > a.NClauses {
			return fmt.Errorf("%w: %s: clause k/n needs 1 <= k <= n and 2 <= n <= 64", ErrUnencodable, a)
		}
	case flow.Multipath:
		if !a.Dst.Valid() || a.NBits == 0 || a.NBits > 32 || int(a.Ofs+a.NBits) > 8*a.Dst.Def().Bytes ||
			(a.NBits < 16 && uint32(a.MaxLink) >= 1<<a.NBits) {
			return fmt.Errorf("%w: bad multipath %s", ErrUnencodable, a)
		}
	case *flow.NAT:
		return fmt.Errorf("%w: nat outside ct", ErrUnencodable)
	case flow.Opaque:
		return fmt.Errorf("%w: %s", ErrUnencodable, a)
	case nil:
		return fmt.Errorf("%w: nil action", ErrUnencodable)
	}
	return nil
}

// AppendActions appends an action list. An action the encoder cannot
// express (see ValidateAction) is an error wrapping ErrUnencodable; b then
// comes back as it was.
func AppendActions(b []byte, as []flow.Action) ([]byte, error) {
	start := len(b)
	for _, a := range as {
		var err error
		if b, err = appendAction(b, a); err != nil {
			return b[:start], err
		}
	}
	return b, nil
}

func appendAction(b []byte, a flow.Action) ([]byte, error) {
	if err := ValidateAction(a); err != nil {
		return b, err
	}
	switch a := a.(type) {
	case flow.Output:
		b = put16(b, atOutput)
		b = put16(b, 16)
		b = put32(b, a.Port)
		b = put16(b, a.MaxLen)
		return pad(b, 6), nil
	case flow.GroupAction:
		b = put16(b, atGroup)
		b = put16(b, 8)
		return put32(b, a.ID), nil
	case flow.PushVLAN:
		b = put16(b, atPushVLAN)
		b = put16(b, 8)
		b = put16(b, a.EthType)
		return pad(b, 2), nil
	case flow.PopVLAN:
		b = put16(b, atPopVLAN)
		b = put16(b, 8)
		return pad(b, 4), nil
	case flow.DecTTL:
		b = put16(b, atDecNwTTL)
		b = put16(b, 8)
		return pad(b, 4), nil
	case flow.SetField:
		if a.Mask == 0 || a.Mask == a.F.FullMask() {
			start := len(b)
			b = put16(b, atSetField)
			b = put16(b, 0)
			if a.F == flow.InPort {
				p, _ := port16(uint32(a.Value))
				b = put32(b, nxmInPort)
				b = put16(b, p)
			} else {
				b = appendOXM(b, a.F, a.Value, 0)
			}
			return finishAction(b, start)
		}
		ofs, n, _ := contiguous(a.Mask)
		b, start := startNX(b, nxastRegLoad)
		b = put16(b, uint16(ofs<<6|(n-1)))
		b = put32(b, nxmHeader(a.F))
		b = put64(b, (a.Value&a.Mask)>>ofs)
		return finishAction(b, start)
	case flow.Move:
		b, start := startNX(b, nxastRegMove)
		b = put16(b, a.NBits)
		b = put16(b, a.SrcOfs)
		b = put16(b, a.DstOfs)
		b = put32(b, nxmHeader(a.Src))
		b = put32(b, nxmHeader(a.Dst))
		return finishAction(b, start)
	case flow.Conjunction:
		// nx_action_conjunction: clause is 0-based on the wire.
		b, start := startNX(b, nxastConjunction)
		b = append(b, a.Clause-1, a.NClauses)
		b = put32(b, a.ID)
		return finishAction(b, start)
	case flow.Multipath:
		b, start := startNX(b, nxastMultipath)
		b = put16(b, a.Fields)
		b = put16(b, a.Basis)
		b = pad(b, 2)
		b = put16(b, a.Algorithm)
		b = put16(b, a.MaxLink)
		b = put32(b, a.Arg)
		b = pad(b, 2)
		b = put16(b, a.Ofs<<6|(a.NBits-1))
		b = put32(b, nxmHeader(a.Dst))
		return finishAction(b, start)
	case flow.Resubmit:
		b, start := startNX(b, nxastResubmitTable)
		port := uint16(a.InPort)
		if a.InPort == flow.PortInPort {
			port = 0xfff8 // OFPP_IN_PORT in 16 bits
		}
		b = put16(b, port)
		b = append(b, a.Table)
		return finishAction(b, start)
	case flow.CT:
		b, start := startNX(b, nxastCT)
		var flags uint16
		if a.Commit {
			flags |= 1
		}
		b = put16(b, flags)
		if a.ZoneSrc != 0 {
			b = put32(b, nxmHeader(a.ZoneSrc))
			b = put16(b, 0<<6|15)
		} else {
			b = put32(b, 0)
			b = put16(b, a.Zone)
		}
		b = append(b, a.Table)
		b = pad(b, 3)
		b = put16(b, 0) // alg
		if a.NAT != nil {
			b = appendNAT(b, a.NAT)
		}
		for _, e := range a.Exec {
			var err error
			if b, err = appendAction(b, e); err != nil {
				return b[:start], err
			}
		}
		return finishAction(b, start)
	}
	return b, fmt.Errorf("%w: action %T", ErrUnencodable, a)
}

func appendNAT(b []byte, n *flow.NAT) []byte {
	b, start := startNX(b, nxastNAT)
	b = pad(b, 2)
	b = put16(b, n.Flags)
	var present uint16
	if n.IPMin != 0 {
		present |= 1
	}
	if n.IPMax != 0 {
		present |= 2
	}
	if n.PortMin != 0 {
		present |= 16
	}
	if n.PortMax != 0 {
		present |= 32
	}
	b = put16(b, present)
	if n.IPMin != 0 {
		b = put32(b, uint32(n.IPMin))
	}
	if n.IPMax != 0 {
		b = put32(b, uint32(n.IPMax))
	}
	if n.PortMin != 0 {
		b = put16(b, n.PortMin)
	}
	if n.PortMax != 0 {
		b = put16(b, n.PortMax)
	}
	// Fixed size (at most 32 bytes).
	b = pad8(b, start)
	be.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// ParseActions decodes a whole action list. Well-formed actions Nimbus
// does not model become flow.Opaque and ErrUnknownField is returned along
// with the list.
func ParseActions(b []byte) ([]flow.Action, error) {
	var out []flow.Action
	var unknown error
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, malformed("short action (%d bytes)", len(b))
		}
		typ, l := be.Uint16(b), int(be.Uint16(b[2:]))
		if l < 8 || l%8 != 0 || l > len(b) {
			return nil, malformed("action type %d length %d (have %d)", typ, l, len(b))
		}
		a, err := parseAction(typ, b[:l])
		if err != nil {
			if err != ErrUnknownField {
				return nil, err
			}
			unknown = err
		}
		out = append(out, a)
		b = b[l:]
	}
	return out, unknown
}

func parseAction(typ uint16, b []byte) (flow.Action, error) {
	need := func(n int) error {
		if len(b) < n {
			return malformed("action type %d needs %d bytes, has %d", typ, n, len(b))
		}
		return nil
	}
	switch typ {
	case atOutput:
		if err := need(16); err != nil {
			return nil, err
		}
		return flow.Output{Port: be.Uint32(b[4:]), MaxLen: be.Uint16(b[8:])}, nil
	case atGroup:
		return flow.GroupAction{ID: be.Uint32(b[4:])}, nil
	case atPushVLAN:
		return flow.PushVLAN{EthType: be.Uint16(b[4:])}, nil
	case atPopVLAN:
		return flow.PopVLAN{}, nil
	case atDecNwTTL:
		return flow.DecTTL{}, nil
	case atSetField:
		if be.Uint32(b[4:]) == nxmInPort {
			if err := need(10); err != nil {
				return nil, err
			}
			return flow.SetField{F: flow.InPort, Value: uint64(port32(be.Uint16(b[8:])))}, nil
		}
		x, _, err := parseOXM(b[4:])
		if err != nil {
			return nil, err
		}
		if x.F == 0 {
			return flow.Opaque{Desc: "set_field"}, ErrUnknownField
		}
		if x.Mask != 0 && x.Mask&x.F.FullMask() == 0 {
			return nil, malformed("masked set_field outside %s", x.F)
		}
		return decodedSetField(x.F, x.Value, x.Mask), nil
	case atExp:
		if err := need(10); err != nil {
			return nil, err
		}
		if be.Uint32(b[4:]) != NiciraID {
			return flow.Opaque{Desc: fmt.Sprintf("experimenter 0x%x", be.Uint32(b[4:]))}, ErrUnknownField
		}
		return parseNX(be.Uint16(b[8:]), b)
	}
	return flow.Opaque{Desc: fmt.Sprintf("type %d", typ)}, ErrUnknownField
}

func parseNX(sub uint16, b []byte) (flow.Action, error) {
	need := func(n int) error {
		if len(b) < n {
			return malformed("nicira action %d needs %d bytes, has %d", sub, n, len(b))
		}
		return nil
	}
	switch sub {
	case nxastMultipath:
		if err := need(32); err != nil {
			return nil, err
		}
		ofsNbits := be.Uint16(b[26:])
		dst, ok := fieldByNXMHeader(be.Uint32(b[28:]))
		if !ok {
			return flow.Opaque{Desc: "multipath"}, ErrUnknownField
		}
		a := flow.Multipath{Fields: be.Uint16(b[10:]), Basis: be.Uint16(b[12:]), Algorithm: be.Uint16(b[16:]),
			MaxLink: be.Uint16(b[18:]), Arg: be.Uint32(b[20:]), Dst: dst, Ofs: ofsNbits >> 6, NBits: ofsNbits&0x3f + 1}
		if int(a.Ofs+a.NBits) > 8*dst.Def().Bytes {
			return nil, malformed("multipath to %s[%d..%d] is outside the field", dst, a.Ofs, a.Ofs+a.NBits-1)
		}
		return a, nil
	case nxastRegMove:
		if err := need(24); err != nil {
			return nil, err
		}
		src, ok1 := fieldByNXMHeader(be.Uint32(b[16:]))
		dst, ok2 := fieldByNXMHeader(be.Uint32(b[20:]))
		if !ok1 || !ok2 {
			return flow.Opaque{Desc: "move"}, ErrUnknownField
		}
		return flow.Move{NBits: be.Uint16(b[10:]), SrcOfs: be.Uint16(b[12:]), DstOfs: be.Uint16(b[14:]), Src: src, Dst: dst}, nil
	case nxastRegLoad:
		if err := need(24); err != nil {
			return nil, err
		}
		ofsNbits := be.Uint16(b[10:])
		dst, ok := fieldByNXMHeader(be.Uint32(b[12:]))
		if !ok {
			return flow.Opaque{Desc: "load"}, ErrUnknownField
		}
		ofs, n := int(ofsNbits>>6), int(ofsNbits&0x3f)+1
		var mask uint64 = ^uint64(0)
		if n < 64 {
			mask = (uint64(1)<<n - 1)
		}
		mask <<= ofs
		if ofs >= 64 || mask&dst.FullMask() == 0 {
			return nil, malformed("load to %s[%d..%d] is outside the field", dst, ofs, ofs+n-1)
		}
		return decodedSetField(dst, be.Uint64(b[16:])<<ofs, mask), nil
	case nxastRegLoad2:
		x, _, err := parseOXM(b[10:])
		if err != nil {
			return nil, err
		}
		if x.F == 0 {
			return flow.Opaque{Desc: "load2"}, ErrUnknownField
		}
		if x.Mask != 0 && x.Mask&x.F.FullMask() == 0 {
			return nil, malformed("masked set_field outside %s", x.F)
		}
		return decodedSetField(x.F, x.Value, x.Mask), nil
	case nxastConjunction:
		if err := need(16); err != nil {
			return nil, err
		}
		a := flow.Conjunction{Clause: b[10] + 1, NClauses: b[11], ID: be.Uint32(b[12:])}
		if a.NClauses < 2 || a.NClauses > 64 || a.Clause < 1 || a.Clause > a.NClauses {
			return nil, malformed("conjunction clause %d/%d (0-based)", b[10], b[11])
		}
		return a, nil
	case nxastResubmitTable:
		if err := need(16); err != nil {
			return nil, err
		}
		port := uint32(be.Uint16(b[10:]))
		if port >= 0xff00 {
			port |= 0xffff0000
		}
		return flow.Resubmit{InPort: port, Table: b[12]}, nil
	case nxastCT:
		if err := need(24); err != nil {
			return nil, err
		}
		ct := flow.CT{Commit: be.Uint16(b[10:])&1 != 0, Table: b[18]}
		if zs := be.Uint32(b[12:]); zs != 0 {
			f, ok := fieldByNXMHeader(zs)
			if !ok {
				return flow.Opaque{Desc: "ct zone"}, ErrUnknownField
			}
			ct.ZoneSrc = f
		} else {
			ct.Zone = be.Uint16(b[16:])
		}
		nested, err := ParseActions(b[24:])
		if err != nil {
			return flow.Opaque{Desc: "ct"}, err
		}
		for _, a := range nested {
			switch a := a.(type) {
			case *flow.NAT:
				ct.NAT = a
			case flow.SetField:
				ct.Exec = append(ct.Exec, a)
			default:
				return flow.Opaque{Desc: "ct nested " + a.String()}, ErrUnknownField
			}
		}
		return ct, nil
	case nxastNAT:
		if err := need(16); err != nil {
			return nil, err
		}
		n := &flow.NAT{Flags: be.Uint16(b[12:])}
		present := be.Uint16(b[14:])
		p := b[16:]
		take := func(k int) ([]byte, error) {
			if len(p) < k {
				return nil, malformed("nat range truncated")
			}
			v := p[:k]
			p = p[k:]
			return v, nil
		}
		if present&1 != 0 {
			v, err := take(4)
			if err != nil {
				return nil, err
			}
			n.IPMin = flow.IPv4(be.Uint32(v))
		}
		if present&2 != 0 {
			v, err := take(4)
			if err != nil {
				return nil, err
			}
			n.IPMax = flow.IPv4(be.Uint32(v))
		}
		if present&(4|8) != 0 {
			return flow.Opaque{Desc: "nat ipv6"}, ErrUnknownField
		}
		if present&16 != 0 {
			v, err := take(2)
			if err != nil {
				return nil, err
			}
			n.PortMin = be.Uint16(v)
		}
		if present&32 != 0 {
			v, err := take(2)
			if err != nil {
				return nil, err
			}
			n.PortMax = be.Uint16(v)
		}
		return n, nil
	}
	return flow.Opaque{Desc: fmt.Sprintf("nicira %d", sub)}, ErrUnknownField
}
