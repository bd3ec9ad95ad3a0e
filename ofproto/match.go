package ofproto

import (
	"errors"
	"fmt"

	"github.com/nimbus-sdn/nimbus/flow"
)

// appendOXM appends one OXM TLV.
func appendOXM(b []byte, f flow.Field, value, mask uint64) []byte {
	d := f.Def()
	hasMask := mask != 0
	n := d.Bytes
	if hasMask {
		n *= 2
	}
	h := uint32(d.Class)<<16 | uint32(d.Code)<<9 | uint32(n)
	if hasMask {
		h |= 1 << 8
	}
	b = put32(b, h)
	b = appendUint(b, value, d.Bytes)
	if hasMask {
		b = appendUint(b, mask, d.Bytes)
	}
	return b
}

func appendUint(b []byte, v uint64, n int) []byte {
	for i := n - 1; i >= 0; i-- {
		if i >= 8 {
			b = append(b, 0)
			continue
		}
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func readUint(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// AppendMatch appends an ofp_match (OXM type) with padding. A field
// Nimbus does not know cannot be encoded: b comes back as it was, with an
// error wrapping ErrUnencodable.
func AppendMatch(b []byte, m flow.Match) ([]byte, error) {
	start := len(b)
	b = put16(b, 1) // OFPMT_OXM
	b = put16(b, 0)
	for _, x := range m {
		if !x.F.Valid() {
			return b[:start], fmt.Errorf("%w: match on unknown field %d", ErrUnencodable, x.F)
		}
		b = appendOXM(b, x.F, x.Value, x.Mask)
	}
	if n := len(b) - start; n > maxMsgLen {
		return b[:start], fmt.Errorf("%w: match of %d bytes", ErrTooLarge, n)
	}
	be.PutUint16(b[start+2:], uint16(len(b)-start))
	return pad8(b, start), nil
}

// ParseMatch decodes an ofp_match at the start of b and returns it and the
// padded length consumed. Fields Nimbus does not model are skipped and
// reported through ErrUnknownField (with a usable match and length), so a
// caller can treat such a flow as foreign instead of failing.
func ParseMatch(b []byte) (flow.Match, int, error) {
	if len(b) < 4 {
		return nil, 0, malformed("short match")
	}
	if typ := be.Uint16(b); typ != 1 {
		return nil, 0, malformed("match type %d is not OXM", typ)
	}
	l := int(be.Uint16(b[2:]))
	padded := (l + 7) / 8 * 8
	if l < 4 || padded > len(b) {
		return nil, 0, malformed("match length %d exceeds %d", l, len(b))
	}
	oxms := b[4:l]
	var m flow.Match
	var unknown error
	for len(oxms) > 0 {
		x, n, err := parseOXM(oxms)
		if err != nil {
			return nil, 0, err
		}
		oxms = oxms[n:]
		if x.F == 0 {
			unknown = ErrUnknownField
			continue
		}
		m = append(m, x)
	}
	return m.Normalize(), padded, unknown
}

// ErrUnknownField reports a well-formed field or action Nimbus does not model.
var ErrUnknownField = errors.New("ofproto: field or action not modelled by nimbus")

func parseOXM(b []byte) (flow.MatchField, int, error) {
	if len(b) < 4 {
		return flow.MatchField{}, 0, malformed("short OXM header")
	}
	h := be.Uint32(b)
	class, code, hasMask, n := uint16(h>>16), uint8(h>>9&0x7f), h>>8&1 == 1, int(h&0xff)
	if 4+n > len(b) {
		return flow.MatchField{}, 0, malformed("OXM length %d exceeds %d", n, len(b)-4)
	}
	if class == 0xffff {
		// An experimenter OXM (OVS writes tcp_flags in OpenFlow 1.3 as
		// one, under the ONF id): its payload starts with the
		// experimenter id. Nimbus models none of them, so it is skipped
		// like an unknown basic field and the flow marked unmodelled.
		if n < 4 {
			return flow.MatchField{}, 0, malformed("experimenter OXM of %d bytes has no experimenter id", n)
		}
		return flow.MatchField{}, 4 + n, nil
	}
	f, ok := flow.FieldByOXM(class, code)
	if !ok {
		return flow.MatchField{}, 4 + n, nil
	}
	w := f.Def().Bytes
	want := w
	if hasMask {
		want = 2 * w
	}
	if n != want {
		return flow.MatchField{}, 0, malformed("OXM %s length %d, want %d", f, n, want)
	}
	x := flow.MatchField{F: f, Value: readUint(b[4 : 4+w])}
	if hasMask {
		x.Mask = readUint(b[4+w : 4+2*w])
	}
	return x, 4 + n, nil
}
