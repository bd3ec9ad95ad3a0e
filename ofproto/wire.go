// Package ofproto is Nimbus's OpenFlow 1.3 wire protocol: framing,
// encoding and decoding of the messages Nimbus uses (including the ONF
// bundle extension and the Nicira actions and fields OVS supports), and a
// per-switch connection with xid-matched requests.
//
// Message type and error vocabulary comes from github.com/netrack/openflow;
// the byte-level encoding is our own so that the hot paths (packet-in,
// flow-mod) allocate little, and because that library has no bundles and
// no Nicira extensions.
package ofproto

import (
	"encoding/binary"
	"errors"
	"fmt"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
)

// Version is OpenFlow 1.3's wire version.
const Version = 4

// HeaderLen is the length of the OpenFlow header.
const HeaderLen = 8

// Message types, from netrack/openflow.
const (
	TypeHello          = uint8(of.TypeHello)
	TypeError          = uint8(of.TypeError)
	TypeEchoRequest    = uint8(of.TypeEchoRequest)
	TypeEchoReply      = uint8(of.TypeEchoReply)
	TypeExperimenter   = uint8(of.TypeExperiment)
	TypeFeaturesReq    = uint8(of.TypeFeaturesRequest)
	TypeFeaturesReply  = uint8(of.TypeFeaturesReply)
	TypeGetConfigReq   = uint8(of.TypeGetConfigRequest)
	TypeGetConfigReply = uint8(of.TypeGetConfigReply)
	TypeSetConfig      = uint8(of.TypeSetConfig)
	TypePacketIn       = uint8(of.TypePacketIn)
	TypeFlowRemoved    = uint8(of.TypeFlowRemoved)
	TypePortStatus     = uint8(of.TypePortStatus)
	TypePacketOut      = uint8(of.TypePacketOut)
	TypeFlowMod        = uint8(of.TypeFlowMod)
	TypeGroupMod       = uint8(of.TypeGroupMod)
	TypePortMod        = uint8(of.TypePortMod)
	TypeTableMod       = uint8(of.TypeTableMod)
	TypeMultipartReq   = uint8(of.TypeMultipartRequest)
	TypeMultipartReply = uint8(of.TypeMultipartReply)
	TypeBarrierReq     = uint8(of.TypeBarrierRequest)
	TypeBarrierReply   = uint8(of.TypeBarrierReply)
	TypeRoleRequest    = uint8(of.TypeRoleRequest)
	TypeRoleReply      = uint8(of.TypeRoleReply)
	TypeGetAsyncReq    = uint8(of.TypeGetAsyncRequest)
	TypeGetAsyncReply  = uint8(of.TypeGetAsyncReply)
	TypeSetAsync       = uint8(of.TypeSetAsync)
	TypeMeterMod       = uint8(of.TypeMeterMod)
)

// TypeName names a message type.
func TypeName(t uint8) string { return of.Type(t).String() }

// Error types and codes used by Nimbus.
const (
	ErrHelloFailed      = uint16(ofp.ErrTypeHelloFailed)
	ErrBadRequest       = uint16(ofp.ErrTypeBadRequest)
	ErrCodeIncompatible = 0  // OFPHFC_INCOMPATIBLE
	ErrCodeBadLen       = 6  // OFPBRC_BAD_LEN
	ErrCodeIsSlave      = 10 // OFPBRC_IS_SLAVE: the connection is a slave
	ErrRoleRequestFail  = 11
	ErrCodeStale        = 0 // OFPRRFC_STALE
)

// Multipart types.
const (
	MPDesc        = 0
	MPFlow        = 1
	MPTable       = 3
	MPPortStats   = 4
	MPGroupDesc   = 7
	MPMeterConfig = 10
	MPPortDesc    = 13
)

// Flow-mod commands.
const (
	FCAdd          = 0
	FCModify       = 1
	FCModifyStrict = 2
	FCDelete       = 3
	FCDeleteStrict = 4
)

// Group and meter mod commands.
const (
	GCAdd    = 0
	GCModify = 1
	GCDelete = 2
)

// Special table, group and buffer ids.
const (
	TableAll  = 0xff
	GroupAny  = 0xffffffff
	GroupAll  = 0xfffffffc
	MeterAll  = 0xffffffff
	NoBuffer  = 0xffffffff
	maxMsgLen = 0xffff
)

// Roles.
const (
	RoleNoChange = 0
	RoleEqual    = 1
	RoleMaster   = 2
	RoleSlave    = 3
)

// Experimenter ids.
const (
	NiciraID = 0x00002320
	ONFID    = 0x4F4E4600
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("ofproto: malformed message")

// ErrTooLarge is wrapped by every encoding error for a message (or an
// object inside one) that does not fit OpenFlow's 16-bit length.
var ErrTooLarge = errors.New("ofproto: message too large")

// ErrUnencodable is wrapped by every encoding error for content the wire
// format cannot express (an unknown field or action type).
var ErrUnencodable = errors.New("ofproto: cannot encode")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

var be = binary.BigEndian

func put16(b []byte, v uint16) []byte { return be.AppendUint16(b, v) }
func put32(b []byte, v uint32) []byte { return be.AppendUint32(b, v) }
func put64(b []byte, v uint64) []byte { return be.AppendUint64(b, v) }
func pad(b []byte, n int) []byte {
	for i := 0; i < n; i++ {
		b = append(b, 0)
	}
	return b
}

// pad8 pads b from start so that its length is a multiple of 8.
func pad8(b []byte, start int) []byte {
	if r := (len(b) - start) % 8; r != 0 {
		b = pad(b, 8-r)
	}
	return b
}

// Header is the OpenFlow message header.
type Header struct {
	Version uint8
	Type    uint8
	Length  uint16
	Xid     uint32
}

// ParseHeader decodes the 8-byte header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, malformed("short header (%d bytes)", len(b))
	}
	h := Header{Version: b[0], Type: b[1], Length: be.Uint16(b[2:]), Xid: be.Uint32(b[4:])}
	if h.Length < HeaderLen {
		return h, malformed("length %d below header size", h.Length)
	}
	return h, nil
}

// startMsg appends a header with a zero length; finishMsg fixes the length.
func startMsg(b []byte, typ uint8, xid uint32) ([]byte, int) {
	start := len(b)
	b = append(b, Version, typ, 0, 0)
	return put32(b, xid), start
}

// finishMsg fixes the length of a message whose size depends on its
// content. A message over 65535 bytes cannot go on the wire (its length
// would wrap): it is removed from b again and ErrTooLarge returned, with b
// as it was before the message began.
func finishMsg(b []byte, start int) ([]byte, error) {
	n := len(b) - start
	if n > maxMsgLen {
		return b[:start], fmt.Errorf("%w: %s of %d bytes exceeds 65535", ErrTooLarge, TypeName(b[start+1]), n)
	}
	be.PutUint16(b[start+2:], uint16(n))
	return b, nil
}

// finishFixed fixes the length of a message whose size is bounded by
// construction (a few dozen bytes), so it cannot exceed the limit.
func finishFixed(b []byte, start int) []byte {
	be.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// AppendSimple appends a body-less message (barrier, features request...).
func AppendSimple(b []byte, typ uint8, xid uint32) []byte {
	b, s := startMsg(b, typ, xid)
	return finishFixed(b, s)
}
