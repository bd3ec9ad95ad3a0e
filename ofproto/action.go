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
	nxastResubmitTable = 14
	nxastRegLoad2      = 33
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

func fieldByNXMHeader(h uint32) (flow.Field, bool) {
	f, ok := flow.FieldByOXM(uint16(h>>16), uint8(h>>9&0x7f))
	if !ok || int(h&0xff) != f.Def().Bytes*(1+int(h>>8&1)) {
		return 0, false
	}
	return f, true
}

func startNX(b []byte, subtype uint16) ([]byte, int) {
	start := len(b)
	b = put16(b, atExp)
	b = put16(b, 0)
	b = put32(b, NiciraID)
	return put16(b, subtype), start
}

func finishAction(b []byte, start int) []byte {
	b = pad8(b, start)
	be.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
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
			return fmt.Errorf("ofproto: set_field on unknown field %d", a.F)
		}
		if a.Mask != 0 && a.Mask != a.F.FullMask() {
			if _, _, ok := contiguous(a.Mask); !ok {
				return fmt.Errorf("ofproto: set_field mask 0x%x on %s is not contiguous", a.Mask, a.F)
			}
		}
	case flow.Move:
		if !a.Src.Valid() || !a.Dst.Valid() || a.NBits == 0 ||
			int(a.SrcOfs+a.NBits) > 8*a.Src.Def().Bytes || int(a.DstOfs+a.NBits) > 8*a.Dst.Def().Bytes {
			return fmt.Errorf("ofproto: bad move %s", a)
		}
	case flow.CT:
		if a.ZoneSrc != 0 && !a.ZoneSrc.Valid() {
			return fmt.Errorf("ofproto: ct zone from unknown field")
		}
		for _, e := range a.Exec {
			if err := ValidateAction(e); err != nil {
				return err
			}
		}
	case flow.Opaque:
		return fmt.Errorf("ofproto: cannot encode %s", a)
	}
	return nil
}

// AppendActions appends an action list.
func AppendActions(b []byte, as []flow.Action) []byte {
	for _, a := range as {
		b = appendAction(b, a)
	}
	return b
}

func appendAction(b []byte, a flow.Action) []byte {
	switch a := a.(type) {
	case flow.Output:
		b = put16(b, atOutput)
		b = put16(b, 16)
		b = put32(b, a.Port)
		b = put16(b, a.MaxLen)
		return pad(b, 6)
	case flow.GroupAction:
		b = put16(b, atGroup)
		b = put16(b, 8)
		return put32(b, a.ID)
	case flow.PushVLAN:
		b = put16(b, atPushVLAN)
		b = put16(b, 8)
		b = put16(b, a.EthType)
		return pad(b, 2)
	case flow.PopVLAN:
		b = put16(b, atPopVLAN)
		b = put16(b, 8)
		return pad(b, 4)
	case flow.DecTTL:
		b = put16(b, atDecNwTTL)
		b = put16(b, 8)
		return pad(b, 4)
	case flow.SetField:
		if a.Mask == 0 || a.Mask == a.F.FullMask() {
			start := len(b)
			b = put16(b, atSetField)
			b = put16(b, 0)
			b = appendOXM(b, a.F, a.Value, 0)
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
			b = appendAction(b, e)
		}
		return finishAction(b, start)
	}
	panic(fmt.Sprintf("ofproto: cannot encode action %T", a))
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
	return finishAction(b, start)
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
		x, _, err := parseOXM(b[4:])
		if err != nil {
			return nil, err
		}
		if x.F == 0 {
			return flow.Opaque{Desc: "set_field"}, ErrUnknownField
		}
		return flow.SetField{F: x.F, Value: x.Value, Mask: x.Mask}, nil
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
		sf := flow.SetField{F: dst, Value: be.Uint64(b[16:]) << ofs & mask, Mask: mask}
		if mask&dst.FullMask() == dst.FullMask() {
			sf.Mask = 0
		}
		return sf, nil
	case nxastRegLoad2:
		x, _, err := parseOXM(b[10:])
		if err != nil {
			return nil, err
		}
		if x.F == 0 {
			return flow.Opaque{Desc: "load2"}, ErrUnknownField
		}
		return flow.SetField{F: x.F, Value: x.Value, Mask: x.Mask}, nil
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
