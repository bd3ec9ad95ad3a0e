package main

// Self-contained OpenFlow 1.3 wire encoding for the fake switch. Only what a
// cbench-style benchmark needs: the switch side of the handshake, replies to
// the requests a controller sends during setup, and packet-in templates.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

const ofpVersion13 = 4

// Message types (OpenFlow 1.3, section A.1).
const (
	ofptHello                   = 0
	ofptError                   = 1
	ofptEchoRequest             = 2
	ofptEchoReply               = 3
	ofptExperimenter            = 4
	ofptFeaturesRequest         = 5
	ofptFeaturesReply           = 6
	ofptGetConfigRequest        = 7
	ofptGetConfigReply          = 8
	ofptSetConfig               = 9
	ofptPacketIn                = 10
	ofptPacketOut               = 13
	ofptFlowMod                 = 14
	ofptMultipartRequest        = 18
	ofptMultipartReply          = 19
	ofptBarrierRequest          = 20
	ofptBarrierReply            = 21
	ofptRoleRequest             = 24
	ofptRoleReply               = 25
	ofptGetAsyncRequest         = 26
	ofptGetAsyncReply           = 27
	ofpHeaderLen                = 8
	ofpNoBuffer          uint32 = 0xffffffff
	ofpHelloElemBitmap          = 1
)

// Multipart types.
const (
	ofpmpDesc           = 0
	ofpmpAggregate      = 2
	ofpmpGroupFeatures  = 8
	ofpmpMeterFeatures  = 11
	ofpmpPortDesc       = 13
	ofpmpExperimenter   = 0xffff
	onfExperimenterID   = 0x4F4E4600
	onftBundleControl   = 2300
	bundleControlLen    = 24 // header + experimenter + exp_type + id + type + flags
	ofpPortLen          = 64
	packetInFrameLen    = 64
	packetInMatchLen    = 12 // ofp_match header + OXM in_port, before padding
	packetInMatchPadded = 16
)

// Packet-in template layout (106 bytes).
const (
	piOffXid      = 4
	piOffBufferID = 8
	piOffInPort   = 32
	piOffFrame    = 8 + 16 + packetInMatchPadded + 2
	piOffEthDst   = piOffFrame
	piOffEthSrc   = piOffFrame + 6
	packetInLen   = piOffFrame + packetInFrameLen
)

func putHeader(b []byte, typ uint8, length int, xid uint32) {
	b[0] = ofpVersion13
	b[1] = typ
	binary.BigEndian.PutUint16(b[2:], uint16(length))
	binary.BigEndian.PutUint32(b[4:], xid)
}

// newMsg returns a zeroed message of the given total length with its header set.
func newMsg(typ uint8, length int, xid uint32) []byte {
	b := make([]byte, length)
	putHeader(b, typ, length, xid)
	return b
}

// encodeHello returns an OF1.3 HELLO carrying a version-bitmap element that
// advertises OpenFlow 1.3 only.
func encodeHello(xid uint32) []byte {
	b := newMsg(ofptHello, 16, xid)
	binary.BigEndian.PutUint16(b[8:], ofpHelloElemBitmap)
	binary.BigEndian.PutUint16(b[10:], 8)
	binary.BigEndian.PutUint32(b[12:], 1<<ofpVersion13)
	return b
}

// negotiateHello checks a controller HELLO and returns the negotiated version,
// which is always 1.3 on success (the fake switch speaks nothing else).
func negotiateHello(msg []byte) (uint8, error) {
	if len(msg) < ofpHeaderLen {
		return 0, errors.New("short HELLO")
	}
	peer := msg[0]
	// Look for a version bitmap element (OF1.3.1+ negotiation).
	for body := msg[ofpHeaderLen:]; len(body) >= 4; {
		et := binary.BigEndian.Uint16(body)
		el := int(binary.BigEndian.Uint16(body[2:]))
		if el < 4 || el > len(body) {
			break
		}
		if et == ofpHelloElemBitmap && el >= 8 {
			bm := binary.BigEndian.Uint32(body[4:])
			if bm&(1<<ofpVersion13) != 0 {
				return ofpVersion13, nil
			}
			return 0, fmt.Errorf("controller HELLO version bitmap %#x does not include OpenFlow 1.3", bm)
		}
		step := (el + 7) &^ 7
		if step > len(body) {
			break
		}
		body = body[step:]
	}
	if peer < ofpVersion13 {
		return 0, fmt.Errorf("controller offers OpenFlow version %#x only (need 1.3)", peer)
	}
	return ofpVersion13, nil
}

// encodeHelloFailed is the OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE error.
func encodeHelloFailed(xid uint32) []byte {
	b := newMsg(ofptError, 12, xid)
	binary.BigEndian.PutUint16(b[8:], 0)
	binary.BigEndian.PutUint16(b[10:], 0)
	return b
}

// encodeFeaturesReply returns an OF1.3 FEATURES_REPLY.
func encodeFeaturesReply(xid uint32, dpid uint64) []byte {
	b := newMsg(ofptFeaturesReply, 32, xid)
	binary.BigEndian.PutUint64(b[8:], dpid)
	binary.BigEndian.PutUint32(b[16:], 256) // n_buffers
	b[20] = 254                             // n_tables
	b[21] = 0                               // auxiliary_id
	// capabilities: FLOW_STATS | TABLE_STATS | PORT_STATS
	binary.BigEndian.PutUint32(b[24:], 0x1|0x2|0x4)
	return b
}

// encodeEchoReply echoes the request's payload with the same xid.
func encodeEchoReply(req []byte) []byte {
	b := make([]byte, len(req))
	copy(b, req)
	b[0] = ofpVersion13
	b[1] = ofptEchoReply
	return b
}

func encodeBarrierReply(xid uint32) []byte { return newMsg(ofptBarrierReply, 8, xid) }

func encodeGetConfigReply(xid uint32, flags, missSendLen uint16) []byte {
	b := newMsg(ofptGetConfigReply, 12, xid)
	binary.BigEndian.PutUint16(b[8:], flags)
	binary.BigEndian.PutUint16(b[10:], missSendLen)
	return b
}

// encodeRoleReply echoes role and generation_id of a ROLE_REQUEST.
func encodeRoleReply(req []byte) []byte {
	b := newMsg(ofptRoleReply, 24, binary.BigEndian.Uint32(req[4:]))
	if len(req) >= 24 {
		copy(b[8:], req[8:24])
	}
	return b
}

// encodeGetAsyncReply reports the OF1.3 default asynchronous configuration.
func encodeGetAsyncReply(xid uint32) []byte {
	b := newMsg(ofptGetAsyncReply, 32, xid)
	binary.BigEndian.PutUint32(b[8:], 0x3)  // packet_in master: NO_MATCH|ACTION
	binary.BigEndian.PutUint32(b[16:], 0x7) // port_status master
	binary.BigEndian.PutUint32(b[20:], 0x7) // port_status slave
	binary.BigEndian.PutUint32(b[24:], 0xf) // flow_removed master
	return b
}

// encodeMultipartReply answers a MULTIPART_REQUEST with a reply of the same
// type and flags 0. Array-valued replies are empty, except PORT_DESC, which
// lists two ports. Replies that are a single fixed structure (DESC,
// AGGREGATE, GROUP_FEATURES, METER_FEATURES) carry that structure, because an
// empty body would not parse; an experimenter reply keeps the request's
// experimenter/exp_type.
func encodeMultipartReply(req []byte, dpid uint64) []byte {
	xid := binary.BigEndian.Uint32(req[4:])
	var mpType uint16
	if len(req) >= 10 {
		mpType = binary.BigEndian.Uint16(req[8:])
	}
	var body []byte
	switch mpType {
	case ofpmpDesc:
		body = make([]byte, 256+256+256+32+256)
		copy(body[0:], "Nimbus ofbench")
		copy(body[256:], "fake switch")
		copy(body[512:], "ofbench")
		copy(body[768:], fmt.Sprintf("%016x", dpid))
		copy(body[800:], fmt.Sprintf("ofbench switch %d", dpid))
	case ofpmpAggregate:
		body = make([]byte, 24)
	case ofpmpGroupFeatures:
		body = make([]byte, 40)
	case ofpmpMeterFeatures:
		body = make([]byte, 16)
	case ofpmpPortDesc:
		body = make([]byte, 2*ofpPortLen)
		for i := 0; i < 2; i++ {
			putPort(body[i*ofpPortLen:], uint32(i+1), dpid)
		}
	case ofpmpExperimenter:
		body = make([]byte, 8)
		if len(req) >= 24 {
			copy(body, req[16:24])
		}
	}
	b := newMsg(ofptMultipartReply, 16+len(body), xid)
	binary.BigEndian.PutUint16(b[8:], mpType)
	copy(b[16:], body)
	return b
}

// putPort writes one 64-byte ofp_port.
func putPort(b []byte, portNo uint32, dpid uint64) {
	binary.BigEndian.PutUint32(b[0:], portNo)
	hw := b[8:14]
	hw[0] = 0x02
	hw[1] = 0x0f
	binary.BigEndian.PutUint16(hw[2:], uint16(dpid))
	binary.BigEndian.PutUint16(hw[4:], uint16(portNo))
	copy(b[16:32], fmt.Sprintf("ofb%d-%d", dpid, portNo))
	binary.BigEndian.PutUint32(b[32:], 0)          // config
	binary.BigEndian.PutUint32(b[36:], 0x4)        // state: LIVE
	binary.BigEndian.PutUint32(b[40:], 1<<6|1<<11) // curr: 10GB_FD | COPPER
	binary.BigEndian.PutUint32(b[44:], 1<<6|1<<11) // advertised
	binary.BigEndian.PutUint32(b[48:], 1<<6|1<<11) // supported
	binary.BigEndian.PutUint32(b[52:], 0)          // peer
	binary.BigEndian.PutUint32(b[56:], 10_000_000) // curr_speed (kbps)
	binary.BigEndian.PutUint32(b[60:], 10_000_000) // max_speed
}

// encodeBundleReply answers an ONF bundle control message (experimenter
// 0x4F4E4600, exp_type 2300) with the matching *_REPLY type. ok is false when
// msg is not a bundle request that needs a reply.
func encodeBundleReply(msg []byte) (reply []byte, ok bool) {
	if len(msg) < bundleControlLen ||
		binary.BigEndian.Uint32(msg[8:]) != onfExperimenterID ||
		binary.BigEndian.Uint32(msg[12:]) != onftBundleControl {
		return nil, false
	}
	typ := binary.BigEndian.Uint16(msg[20:])
	// OPEN_REQUEST 0, CLOSE_REQUEST 2, COMMIT_REQUEST 4, DISCARD_REQUEST 6.
	if typ%2 != 0 || typ > 6 {
		return nil, false
	}
	b := newMsg(ofptExperimenter, bundleControlLen, binary.BigEndian.Uint32(msg[4:]))
	copy(b[8:20], msg[8:20]) // experimenter, exp_type, bundle_id
	binary.BigEndian.PutUint16(b[20:], typ+1)
	copy(b[22:24], msg[22:24]) // flags
	return b, true
}

// MAC and address plan. The datapath id (switch index + 1) is embedded so
// every switch has its own addresses:
//
//	source MACs   00:DD:DD:MM:MM:MM  (D = dpid, M = MAC index < 2^24)
//	learned MAC   02:00:00:00:DD:DD  (the destination all flows go to)
func srcMAC(dpid uint64, idx int) [6]byte {
	return [6]byte{0x00, byte(dpid >> 8), byte(dpid), byte(idx >> 16), byte(idx >> 8), byte(idx)}
}

func dstMAC(dpid uint64) [6]byte {
	return [6]byte{0x02, 0x00, 0x00, 0x00, byte(dpid >> 8), byte(dpid)}
}

var broadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// encodePacketIn builds an OF1.3 PACKET_IN (reason NO_MATCH, table 0, cookie
// 0, match {in_port}) around a 64-byte Ethernet/IPv4/UDP frame.
func encodePacketIn(xid, bufferID, inPort uint32, dst, src [6]byte) []byte {
	b := newMsg(ofptPacketIn, packetInLen, xid)
	binary.BigEndian.PutUint32(b[8:], bufferID)
	binary.BigEndian.PutUint16(b[12:], packetInFrameLen) // total_len
	b[14] = 0                                            // OFPR_NO_MATCH
	b[15] = 0                                            // table_id
	// cookie b[16:24] = 0
	binary.BigEndian.PutUint16(b[24:], 1) // OFPMT_OXM
	binary.BigEndian.PutUint16(b[26:], packetInMatchLen)
	binary.BigEndian.PutUint32(b[28:], 0x80000004) // OXM_OF_IN_PORT, 4 bytes
	binary.BigEndian.PutUint32(b[piOffInPort:], inPort)
	// b[36:40] match padding, b[40:42] pad
	putFrame(b[piOffFrame:], dst, src)
	return b
}

// putFrame writes a minimal 64-byte Ethernet + IPv4 + UDP frame. The IPv4
// addresses are documentation prefixes; they only ever travel inside
// OpenFlow messages.
func putFrame(f []byte, dst, src [6]byte) {
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], packetInFrameLen-14) // total length 50
	ip[8] = 64                                              // TTL
	ip[9] = 17                                              // UDP
	copy(ip[12:16], []byte{198, 51, 100, 1})
	copy(ip[16:20], []byte{192, 0, 2, 1})
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 5001)
	binary.BigEndian.PutUint16(udp[4:], packetInFrameLen-34) // UDP length 30
	// checksum 0 (none); payload f[42:64] zero
}

func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// responseRef extracts what a FLOW_MOD or PACKET_OUT refers to: its buffer_id
// and, for a PACKET_OUT carrying packet data, the data's Ethernet source.
func responseRef(msg []byte) (bufferID uint32, src []byte) {
	switch msg[1] {
	case ofptFlowMod:
		if len(msg) >= 36 {
			return binary.BigEndian.Uint32(msg[32:]), nil
		}
	case ofptPacketOut:
		if len(msg) >= 24 {
			bufferID = binary.BigEndian.Uint32(msg[8:])
			data := 24 + int(binary.BigEndian.Uint16(msg[16:]))
			if data+12 <= len(msg) {
				src = msg[data+6 : data+12]
			}
			return bufferID, src
		}
	}
	return ofpNoBuffer, nil
}
