package ofproto

import (
	"fmt"

	"github.com/nimbus-sdn/nimbus/flow"
)

// appendInstructions appends the flow's instructions in the order OVS
// prints them.
func appendInstructions(b []byte, f *flow.Flow) ([]byte, error) {
	if f.Meter != 0 {
		b = put16(b, itMeter)
		b = put16(b, 8)
		b = put32(b, f.Meter)
	}
	if len(f.Actions) > 0 {
		start := len(b)
		b = put16(b, itApplyActions)
		b = put16(b, 0)
		b = pad(b, 4)
		var err error
		if b, err = AppendActions(b, f.Actions); err != nil {
			return b, err
		}
		be.PutUint16(b[start+2:], uint16(len(b)-start)) // checked with the message
	}
	if f.MetadataMask != 0 {
		b = put16(b, itWriteMetadata)
		b = put16(b, 24)
		b = pad(b, 4)
		b = put64(b, f.Metadata)
		b = put64(b, f.MetadataMask)
	}
	if f.Goto != 0 {
		b = put16(b, itGoto)
		b = put16(b, 8)
		b = append(b, f.Goto)
		b = pad(b, 3)
	}
	return b, nil
}

// parseInstructions fills the flow's instructions from b.
func parseInstructions(b []byte, f *flow.Flow) error {
	var unknown error
	for len(b) > 0 {
		if len(b) < 4 {
			return malformed("short instruction")
		}
		typ, l := be.Uint16(b), int(be.Uint16(b[2:]))
		if l < 8 || l > len(b) || l%8 != 0 {
			return malformed("instruction %d length %d (have %d)", typ, l, len(b))
		}
		in := b[:l]
		switch typ {
		case itGoto:
			f.Goto = in[4]
		case itWriteMetadata:
			if l < 24 {
				return malformed("write_metadata length %d", l)
			}
			f.Metadata, f.MetadataMask = be.Uint64(in[8:]), be.Uint64(in[16:])
		case itApplyActions:
			as, err := ParseActions(in[8:])
			if err != nil && err != ErrUnknownField {
				return err
			}
			if err != nil {
				unknown = err
			}
			f.Actions = append(f.Actions, as...)
		case itMeter:
			f.Meter = be.Uint32(in[4:])
		default:
			f.Actions = append(f.Actions, flow.Opaque{Desc: fmt.Sprintf("instruction %d", typ)})
			unknown = ErrUnknownField
		}
		b = b[l:]
	}
	return unknown
}

// FlowModOpts are the per-message fields of a flow-mod that are not part of
// the flow itself.
type FlowModOpts struct {
	Command    uint8
	BufferID   uint32 // NoBuffer unless releasing a buffered packet
	CookieMask uint64 // for modify/delete: restrict to this cookie
}

// AppendFlowMod appends an OFPT_FLOW_MOD. A flow that does not fit one
// message (ErrTooLarge) or uses what the wire cannot express
// (ErrUnencodable) is an error, and b comes back as it was.
func AppendFlowMod(b []byte, xid uint32, f *flow.Flow, o FlowModOpts) ([]byte, error) {
	b, s := startMsg(b, TypeFlowMod, xid)
	b = put64(b, f.Cookie)
	b = put64(b, o.CookieMask)
	b = append(b, f.Table, o.Command)
	b = put16(b, f.IdleTimeout)
	b = put16(b, f.HardTimeout)
	b = put16(b, f.Priority)
	bid := o.BufferID
	if bid == 0 && o.Command != FCAdd {
		bid = NoBuffer
	}
	b = put32(b, bid)
	b = put32(b, flow.PortAny)
	b = put32(b, GroupAny)
	b = put16(b, f.Flags)
	b = pad(b, 2)
	var err error
	if b, err = AppendMatch(b, f.Match); err != nil {
		return b[:s], fmt.Errorf("ofproto: flow-mod: %w", err)
	}
	if o.Command != FCDelete && o.Command != FCDeleteStrict {
		if b, err = appendInstructions(b, f); err != nil {
			return b[:s], fmt.Errorf("ofproto: flow-mod: %w", err)
		}
	}
	return finishMsg(b, s)
}

// AppendMultipartReq appends a multipart request with the given body.
func AppendMultipartReq(b []byte, xid uint32, mpType uint16, body []byte) ([]byte, error) {
	b, s := startMsg(b, TypeMultipartReq, xid)
	b = put16(b, mpType)
	b = put16(b, 0)
	b = pad(b, 4)
	b = append(b, body...)
	return finishMsg(b, s)
}

// FlowStatsRequestBody builds the body of an OFPMP_FLOW request for all
// tables, filtered by cookie/mask.
func FlowStatsRequestBody(table uint8, cookie, cookieMask uint64) []byte {
	var b []byte
	b = append(b, table)
	b = pad(b, 3)
	b = put32(b, flow.PortAny)
	b = put32(b, GroupAny)
	b = pad(b, 4)
	b = put64(b, cookie)
	b = put64(b, cookieMask)
	b, _ = AppendMatch(b, nil) // an empty match always encodes
	return b
}

// FlowStats is one dumped flow with its counters.
type FlowStats struct {
	Flow        flow.Flow
	DurationSec uint32
	Packets     uint64
	Bytes       uint64
	// Unknown is set when the flow uses fields or actions Nimbus does not
	// model; its Flow is then only approximate.
	Unknown bool
	// UnknownMatch is set when the unmodelled part is in the match (an
	// experimenter OXM such as OVS's tcp_flags, say): Flow.Match then
	// lacks those fields, so the flow's identity on the switch is not
	// Flow.Key().
	UnknownMatch bool
}

// ParseFlowStats decodes the body of an OFPMP_FLOW reply.
func ParseFlowStats(b []byte) ([]FlowStats, error) {
	var out []FlowStats
	for len(b) > 0 {
		if len(b) < 56 {
			return nil, malformed("short flow stats entry (%d bytes)", len(b))
		}
		l := int(be.Uint16(b))
		if l < 56 || l > len(b) {
			return nil, malformed("flow stats length %d (have %d)", l, len(b))
		}
		e := b[:l]
		var fs FlowStats
		f := &fs.Flow
		f.Table = e[2]
		fs.DurationSec = be.Uint32(e[4:])
		f.Priority = be.Uint16(e[12:])
		f.IdleTimeout = be.Uint16(e[14:])
		f.HardTimeout = be.Uint16(e[16:])
		f.Flags = be.Uint16(e[18:])
		f.Cookie = be.Uint64(e[24:])
		fs.Packets = be.Uint64(e[32:])
		fs.Bytes = be.Uint64(e[40:])
		m, n, err := ParseMatch(e[48:])
		if err == ErrUnknownField {
			fs.Unknown, fs.UnknownMatch = true, true
		} else if err != nil {
			return nil, err
		}
		f.Match = m
		if err := parseInstructions(e[48+n:], f); err == ErrUnknownField {
			fs.Unknown = true
		} else if err != nil {
			return nil, err
		}
		out = append(out, fs)
		b = b[l:]
	}
	return out, nil
}

func appendBuckets(b []byte, bs []flow.Bucket) ([]byte, error) {
	for _, bk := range bs {
		start := len(b)
		b = put16(b, 0)
		b = put16(b, bk.Weight)
		wp := bk.WatchPort
		if wp == 0 {
			wp = flow.PortAny
		}
		wg := bk.WatchGroup
		if wg == 0 {
			wg = GroupAny
		}
		b = put32(b, wp)
		b = put32(b, wg)
		b = pad(b, 4)
		var err error
		if b, err = AppendActions(b, bk.Actions); err != nil {
			return b, err
		}
		be.PutUint16(b[start:], uint16(len(b)-start)) // checked with the message
	}
	return b, nil
}

func parseBuckets(b []byte) ([]flow.Bucket, error) {
	var out []flow.Bucket
	var unknown error
	for len(b) > 0 {
		if len(b) < 16 {
			return nil, malformed("short bucket")
		}
		l := int(be.Uint16(b))
		if l < 16 || l > len(b) {
			return nil, malformed("bucket length %d (have %d)", l, len(b))
		}
		bk := flow.Bucket{Weight: be.Uint16(b[2:]), WatchPort: be.Uint32(b[4:]), WatchGroup: be.Uint32(b[8:])}
		if bk.WatchPort == flow.PortAny {
			bk.WatchPort = 0
		}
		if bk.WatchGroup == GroupAny {
			bk.WatchGroup = 0
		}
		as, err := ParseActions(b[16:l])
		if err != nil && err != ErrUnknownField {
			return nil, err
		}
		if err != nil {
			unknown = err
		}
		bk.Actions = as
		out = append(out, bk)
		b = b[l:]
	}
	return out, unknown
}

// AppendGroupMod appends an OFPT_GROUP_MOD. A group whose buckets do not
// fit one message (about 2,000 single-output buckets) is ErrTooLarge, and
// b comes back as it was.
func AppendGroupMod(b []byte, xid uint32, cmd uint16, g *flow.Group) ([]byte, error) {
	b, s := startMsg(b, TypeGroupMod, xid)
	b = put16(b, cmd)
	b = append(b, g.Type, 0)
	b = put32(b, g.ID)
	if cmd != GCDelete {
		var err error
		if b, err = appendBuckets(b, g.Buckets); err != nil {
			return b[:s], fmt.Errorf("ofproto: group 0x%x: %w", g.ID, err)
		}
	}
	b, err := finishMsg(b, s)
	if err != nil {
		return b, fmt.Errorf("ofproto: group 0x%x with %d buckets: %w", g.ID, len(g.Buckets), err)
	}
	return b, nil
}

// ParseGroupDesc decodes the body of an OFPMP_GROUP_DESC reply.
func ParseGroupDesc(b []byte) ([]flow.Group, error) {
	var out []flow.Group
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, malformed("short group desc")
		}
		l := int(be.Uint16(b))
		if l < 8 || l > len(b) {
			return nil, malformed("group desc length %d (have %d)", l, len(b))
		}
		g := flow.Group{Type: b[2], ID: be.Uint32(b[4:])}
		bs, err := parseBuckets(b[8:l])
		if err != nil && err != ErrUnknownField {
			return nil, err
		}
		g.Buckets = bs
		out = append(out, g)
		b = b[l:]
	}
	return out, nil
}

func appendBands(b []byte, bands []flow.Band) []byte {
	for _, bd := range bands {
		b = put16(b, bd.Type)
		b = put16(b, 16)
		b = put32(b, bd.Rate)
		b = put32(b, bd.Burst)
		if bd.Type == flow.BandDSCPRemark {
			b = append(b, bd.PrecLevel)
			b = pad(b, 3)
		} else {
			b = pad(b, 4)
		}
	}
	return b
}

// AppendMeterMod appends an OFPT_METER_MOD.
func AppendMeterMod(b []byte, xid uint32, cmd uint16, m *flow.Meter) ([]byte, error) {
	b, s := startMsg(b, TypeMeterMod, xid)
	b = put16(b, cmd)
	b = put16(b, m.Flags)
	b = put32(b, m.ID)
	if cmd != GCDelete {
		b = appendBands(b, m.Bands)
	}
	return finishMsg(b, s)
}

// ParseMeterConfig decodes the body of an OFPMP_METER_CONFIG reply.
func ParseMeterConfig(b []byte) ([]flow.Meter, error) {
	var out []flow.Meter
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, malformed("short meter config")
		}
		l := int(be.Uint16(b))
		if l < 8 || l > len(b) {
			return nil, malformed("meter config length %d (have %d)", l, len(b))
		}
		m := flow.Meter{Flags: be.Uint16(b[2:]), ID: be.Uint32(b[4:])}
		bands := b[8:l]
		for len(bands) > 0 {
			if len(bands) < 16 {
				return nil, malformed("short meter band")
			}
			bl := int(be.Uint16(bands[2:]))
			if bl < 16 || bl > len(bands) {
				return nil, malformed("meter band length %d", bl)
			}
			bd := flow.Band{Type: be.Uint16(bands), Rate: be.Uint32(bands[4:]), Burst: be.Uint32(bands[8:])}
			if bd.Type == flow.BandDSCPRemark {
				bd.PrecLevel = bands[12]
			}
			m.Bands = append(m.Bands, bd)
			bands = bands[bl:]
		}
		out = append(out, m)
		b = b[l:]
	}
	return out, nil
}

// MeterConfigRequestBody asks for every meter.
func MeterConfigRequestBody() []byte {
	b := put32(nil, MeterAll)
	return pad(b, 4)
}

// PacketIn is a decoded OFPT_PACKET_IN. Data aliases the read buffer and
// is only valid during the handler call.
type PacketIn struct {
	BufferID uint32
	TotalLen uint16
	Reason   uint8
	Table    uint8
	Cookie   uint64
	InPort   uint32
	Match    flow.Match
	Data     []byte
}

// ParsePacketIn decodes a packet-in body (after the header). It extracts
// in_port without allocating; the full match is decoded only if full.
func ParsePacketIn(body []byte, full bool) (PacketIn, error) {
	var p PacketIn
	if len(body) < 16+8 {
		return p, malformed("short packet-in")
	}
	p.BufferID = be.Uint32(body)
	p.TotalLen = be.Uint16(body[4:])
	p.Reason = body[6]
	p.Table = body[7]
	p.Cookie = be.Uint64(body[8:])
	mb := body[16:]
	if be.Uint16(mb) != 1 {
		return p, malformed("packet-in match type %d", be.Uint16(mb))
	}
	ml := int(be.Uint16(mb[2:]))
	padded := (ml + 7) / 8 * 8
	if ml < 4 || padded+2 > len(mb) {
		return p, malformed("packet-in match length %d (have %d)", ml, len(mb))
	}
	// Fast path: walk the OXMs for in_port only.
	oxms := mb[4:ml]
	for len(oxms) >= 4 {
		h := be.Uint32(oxms)
		n := int(h & 0xff)
		if 4+n > len(oxms) {
			return p, malformed("packet-in OXM overruns match")
		}
		if h>>16 == uint32(flow.ClassBasic) && (h>>9)&0x7f == 0 && n == 4 {
			p.InPort = be.Uint32(oxms[4:])
		}
		oxms = oxms[4+n:]
	}
	if len(oxms) != 0 {
		return p, malformed("packet-in trailing match bytes")
	}
	if full {
		m, _, err := ParseMatch(mb)
		if err != nil && err != ErrUnknownField {
			return p, err
		}
		p.Match = m
	}
	p.Data = mb[padded+2:]
	return p, nil
}

// PacketOutOverhead is the size of a packet-out without its data when
// its action list is one output action: the most data such a packet-out
// carries is 65535 minus this.
const PacketOutOverhead = HeaderLen + 16 + 16

// AppendPacketOut appends an OFPT_PACKET_OUT. Data that does not fit one
// message with its actions is ErrTooLarge (b comes back as it was): a
// caller with a buffer id should release the buffered packet instead.
func AppendPacketOut(b []byte, xid, bufferID, inPort uint32, actions []flow.Action, data []byte) ([]byte, error) {
	b, s := startMsg(b, TypePacketOut, xid)
	b = put32(b, bufferID)
	b = put32(b, inPort)
	alenAt := len(b)
	b = put16(b, 0)
	b = pad(b, 6)
	as := len(b)
	var err error
	if b, err = AppendActions(b, actions); err != nil {
		return b[:s], fmt.Errorf("ofproto: packet-out: %w", err)
	}
	be.PutUint16(b[alenAt:], uint16(len(b)-as)) // checked with the message
	if bufferID == NoBuffer {
		if len(b)-s+len(data) > maxMsgLen {
			// Checked before the copy: the data may be large.
			return b[:s], fmt.Errorf("%w: packet-out of %d bytes of data (at most %d fit)", ErrTooLarge, len(data), maxMsgLen-(len(b)-s))
		}
		b = append(b, data...)
	}
	return finishMsg(b, s)
}

// Port is an ofp_port.
type Port struct {
	No        uint32
	HWAddr    flow.MAC
	Name      string
	Config    uint32
	State     uint32
	CurrSpeed uint32
}

// Port config/state bits.
const (
	PortConfigDown = 1 << 0
	PortStateDown  = 1 << 0 // OFPPS_LINK_DOWN
)

// Up reports whether the port is administratively and physically up.
func (p Port) Up() bool { return p.Config&PortConfigDown == 0 && p.State&PortStateDown == 0 }

const portLen = 64

func parsePort(b []byte) Port {
	name := b[16:32]
	n := 0
	for n < len(name) && name[n] != 0 {
		n++
	}
	return Port{No: be.Uint32(b), HWAddr: flow.MACFromBytes(b[8:14]), Name: string(name[:n]),
		Config: be.Uint32(b[32:]), State: be.Uint32(b[36:]), CurrSpeed: be.Uint32(b[56:])}
}

// ParsePortDesc decodes an OFPMP_PORT_DESC reply body.
func ParsePortDesc(b []byte) ([]Port, error) {
	if len(b)%portLen != 0 {
		return nil, malformed("port desc length %d not a multiple of 64", len(b))
	}
	var out []Port
	for ; len(b) > 0; b = b[portLen:] {
		out = append(out, parsePort(b))
	}
	return out, nil
}

// Port status reasons.
const (
	PortAdded    = 0
	PortDeleted  = 1
	PortModified = 2
)

// ParsePortStatus decodes an OFPT_PORT_STATUS body.
func ParsePortStatus(b []byte) (reason uint8, p Port, err error) {
	if len(b) != 8+portLen {
		return 0, p, malformed("port status length %d", len(b))
	}
	return b[0], parsePort(b[8:]), nil
}

// FlowRemoved is a decoded OFPT_FLOW_REMOVED.
type FlowRemoved struct {
	Cookie   uint64
	Priority uint16
	Reason   uint8
	Table    uint8
	Match    flow.Match
}

// ParseFlowRemoved decodes an OFPT_FLOW_REMOVED body.
func ParseFlowRemoved(b []byte) (FlowRemoved, error) {
	var r FlowRemoved
	if len(b) < 40+4 {
		return r, malformed("short flow removed")
	}
	r.Cookie = be.Uint64(b)
	r.Priority = be.Uint16(b[8:])
	r.Reason = b[10]
	r.Table = b[11]
	m, _, err := ParseMatch(b[40:])
	if err != nil && err != ErrUnknownField {
		return r, err
	}
	r.Match = m
	return r, nil
}

// Features is the decoded OFPT_FEATURES_REPLY.
type Features struct {
	DPID         uint64
	NBuffers     uint32
	NTables      uint8
	AuxID        uint8
	Capabilities uint32
}

// ParseFeatures decodes an OFPT_FEATURES_REPLY body.
func ParseFeatures(b []byte) (Features, error) {
	if len(b) < 24 {
		return Features{}, malformed("short features reply (%d bytes)", len(b))
	}
	return Features{DPID: be.Uint64(b), NBuffers: be.Uint32(b[8:]), NTables: b[12], AuxID: b[13], Capabilities: be.Uint32(b[16:])}, nil
}

// AppendHello appends a HELLO with a version bitmap for 1.3 only.
func AppendHello(b []byte, xid uint32) []byte {
	b, s := startMsg(b, TypeHello, xid)
	b = put16(b, 1) // OFPHET_VERSIONBITMAP
	b = put16(b, 8)
	b = put32(b, 1<<Version)
	return finishFixed(b, s)
}

// HelloSupports13 reports whether a peer's HELLO allows OpenFlow 1.3.
func HelloSupports13(h Header, body []byte) (bool, error) {
	for len(body) >= 4 {
		typ, l := be.Uint16(body), int(be.Uint16(body[2:]))
		if l < 4 || l > len(body) {
			return false, malformed("hello element length %d", l)
		}
		if typ == 1 && l >= 8 {
			// The first bitmap word covers versions 0..31.
			return be.Uint32(body[4:])&(1<<Version) != 0, nil
		}
		adv := (l + 7) / 8 * 8
		if adv > len(body) {
			break
		}
		body = body[adv:]
	}
	// No bitmap: the peer supports every version up to h.Version.
	return h.Version >= Version, nil
}

// AppendError appends an OFPT_ERROR carrying up to 64 bytes of data.
func AppendError(b []byte, xid uint32, typ, code uint16, data []byte) []byte {
	b, s := startMsg(b, TypeError, xid)
	b = put16(b, typ)
	b = put16(b, code)
	if len(data) > 64 {
		data = data[:64]
	}
	b = append(b, data...)
	return finishFixed(b, s)
}

// OFError is an OpenFlow error reply, matched to the request it answers.
type OFError struct {
	Type, Code uint16
	// ReqType is the type of the offending request when the error
	// carries its header.
	ReqType uint8
	Xid     uint32
	Data    []byte
}

func (e *OFError) Error() string {
	return fmt.Sprintf("ofproto: switch rejected %s (xid %d): %s", TypeName(e.ReqType), e.Xid, errorName(e.Type, e.Code))
}

func errorName(typ, code uint16) string {
	types := []string{"HELLO_FAILED", "BAD_REQUEST", "BAD_ACTION", "BAD_INSTRUCTION", "BAD_MATCH",
		"FLOW_MOD_FAILED", "GROUP_MOD_FAILED", "PORT_MOD_FAILED", "TABLE_MOD_FAILED", "QUEUE_OP_FAILED",
		"SWITCH_CONFIG_FAILED", "ROLE_REQUEST_FAILED", "METER_MOD_FAILED", "TABLE_FEATURES_FAILED"}
	name := fmt.Sprintf("type %d", typ)
	if int(typ) < len(types) {
		name = types[typ]
	} else if typ == 0xffff {
		name = "EXPERIMENTER"
	}
	if typ == 11 && code == 0 {
		return name + "/STALE"
	}
	if typ == ErrBadRequest && code == ErrCodeIsSlave {
		return name + "/IS_SLAVE"
	}
	return fmt.Sprintf("%s code %d", name, code)
}

// ParseError decodes an OFPT_ERROR body.
func ParseError(xid uint32, b []byte) (*OFError, error) {
	if len(b) < 4 {
		return nil, malformed("short error")
	}
	e := &OFError{Type: be.Uint16(b), Code: be.Uint16(b[2:]), Xid: xid, Data: append([]byte(nil), b[4:]...)}
	if len(e.Data) >= 2 {
		e.ReqType = e.Data[1]
	}
	return e, nil
}

// AppendSetConfig appends an OFPT_SET_CONFIG.
func AppendSetConfig(b []byte, xid uint32, flags, missSendLen uint16) []byte {
	b, s := startMsg(b, TypeSetConfig, xid)
	b = put16(b, flags)
	b = put16(b, missSendLen)
	return finishFixed(b, s)
}

// AppendRoleRequest appends an OFPT_ROLE_REQUEST.
func AppendRoleRequest(b []byte, xid, role uint32, generation uint64) []byte {
	b, s := startMsg(b, TypeRoleRequest, xid)
	b = put32(b, role)
	b = pad(b, 4)
	b = put64(b, generation)
	return finishFixed(b, s)
}

// ParseRoleReply decodes an OFPT_ROLE_REPLY body.
func ParseRoleReply(b []byte) (role uint32, generation uint64, err error) {
	if len(b) < 16 {
		return 0, 0, malformed("short role reply")
	}
	return be.Uint32(b), be.Uint64(b[8:]), nil
}

// MaxEchoData is the most data an echo carries: an echo request read from
// the wire cannot carry more, so a reply always echoes all of it.
const MaxEchoData = maxMsgLen - HeaderLen

// AppendEcho appends an echo request or reply, with at most MaxEchoData
// bytes of data (any beyond are left out).
func AppendEcho(b []byte, typ uint8, xid uint32, data []byte) []byte {
	b, s := startMsg(b, typ, xid)
	if len(data) > MaxEchoData {
		data = data[:MaxEchoData]
	}
	b = append(b, data...)
	return finishFixed(b, s)
}

// ONF bundle extension (EXT-230) for OpenFlow 1.3.
const (
	onftBundleControl = 2300
	onftBundleAdd     = 2301

	BundleOpenRequest    = 0
	BundleOpenReply      = 1
	BundleCloseRequest   = 2
	BundleCloseReply     = 3
	BundleCommitRequest  = 4
	BundleCommitReply    = 5
	BundleDiscardRequest = 6
	BundleDiscardReply   = 7

	BundleAtomic  = 1
	BundleOrdered = 2
)

// AppendBundleControl appends an ONF bundle control message.
func AppendBundleControl(b []byte, xid, bundleID uint32, typ, flags uint16) []byte {
	b, s := startMsg(b, TypeExperimenter, xid)
	b = put32(b, ONFID)
	b = put32(b, onftBundleControl)
	b = put32(b, bundleID)
	b = put16(b, typ)
	b = put16(b, flags)
	return finishFixed(b, s)
}

// BundleAddOverhead is what wrapping a message in a bundle add costs: a
// message that goes in a bundle must fit 65535 minus this.
const BundleAddOverhead = HeaderLen + 16

// AppendBundleAdd wraps the message produced by inner (which must use the
// same xid, as the extension requires) in an ONF bundle add message. An
// error from inner, or an inner message too large to wrap, is returned
// with b as it was.
func AppendBundleAdd(b []byte, xid, bundleID uint32, flags uint16, inner func([]byte) ([]byte, error)) ([]byte, error) {
	b, s := startMsg(b, TypeExperimenter, xid)
	b = put32(b, ONFID)
	b = put32(b, onftBundleAdd)
	b = put32(b, bundleID)
	b = pad(b, 2)
	b = put16(b, flags)
	var err error
	if b, err = inner(b); err != nil {
		return b[:s], err
	}
	if b, err = finishMsg(b, s); err != nil {
		return b, fmt.Errorf("ofproto: bundle add: %w", err)
	}
	return b, nil
}

// ParseBundleControl decodes an ONF bundle control body (after the
// OpenFlow header). ok is false for other experimenter messages.
func ParseBundleControl(body []byte) (bundleID uint32, typ uint16, ok bool, err error) {
	if len(body) < 8 {
		return 0, 0, false, malformed("short experimenter message")
	}
	if be.Uint32(body) != ONFID || be.Uint32(body[4:]) != onftBundleControl {
		return 0, 0, false, nil
	}
	if len(body) < 16 {
		return 0, 0, false, malformed("short bundle control")
	}
	return be.Uint32(body[8:]), be.Uint16(body[12:]), true, nil
}
