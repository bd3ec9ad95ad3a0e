package topology

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// LLDP frames Nimbus sends to discover fabric links: chassis id
// "dpid:<16 hex digits>" (locally assigned), port id the OpenFlow port
// number (port component, 4 bytes), TTL 120 s, and, with a key, an
// organizationally specific TLV (OUI 4e:49:4d, subtype 1) carrying the
// first 16 bytes of HMAC-SHA256(key, dpid, port), so that a frame naming
// a switch port Nimbus did not send from fails to parse. Sent to the
// nearest-bridge group address, which bridges never forward.
const (
	EthTypeLLDP = 0x88cc
	LLDPDst     = 0x0180c200000e
)

const chassisPrefix = "dpid:"

var authOUI = [3]byte{0x4e, 0x49, 0x4d}

const authLen = 16

func lldpMAC(key []byte, dpid uint64, port uint32) []byte {
	m := hmac.New(sha256.New, key)
	var b [12]byte
	binary.BigEndian.PutUint64(b[:], dpid)
	binary.BigEndian.PutUint32(b[8:], port)
	m.Write(b[:])
	return m.Sum(nil)[:authLen]
}

// LLDPFrame builds the discovery frame for a switch port. src is the
// port's own MAC (used as the Ethernet source); key, when not empty,
// authenticates the frame.
func LLDPFrame(dpid uint64, port uint32, src uint64, key []byte) []byte {
	chassis := chassisPrefix + fmt.Sprintf("%016x", dpid)
	b := make([]byte, 0, 64)
	b = appendMAC(b, LLDPDst)
	b = appendMAC(b, src)
	b = binary.BigEndian.AppendUint16(b, EthTypeLLDP)
	tlv := func(typ uint8, val []byte) {
		b = binary.BigEndian.AppendUint16(b, uint16(typ)<<9|uint16(len(val)))
		b = append(b, val...)
	}
	tlv(1, append([]byte{7}, chassis...))                  // chassis id, locally assigned
	tlv(2, binary.BigEndian.AppendUint32([]byte{2}, port)) // port id, port component
	tlv(3, []byte{0, 120})                                 // TTL
	if len(key) > 0 {
		tlv(127, append(append(authOUI[:], 1), lldpMAC(key, dpid, port)...))
	}
	tlv(0, nil) // end
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

func appendMAC(b []byte, m uint64) []byte {
	return append(b, byte(m>>40), byte(m>>32), byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}

// ParseLLDP reads a frame sent by LLDPFrame with the same key. ok is
// false for anything else (other LLDP speakers, truncated or malformed
// frames, a missing or wrong authenticator when key is not empty).
func ParseLLDP(frame []byte, key []byte) (dpid uint64, port uint32, ok bool) {
	if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:]) != EthTypeLLDP {
		return 0, 0, false
	}
	b := frame[14:]
	var haveChassis, havePort bool
	var auth []byte
	for len(b) >= 2 {
		h := binary.BigEndian.Uint16(b)
		typ, n := uint8(h>>9), int(h&0x1ff)
		b = b[2:]
		if n > len(b) {
			return 0, 0, false
		}
		val := b[:n]
		b = b[n:]
		switch typ {
		case 0:
			if !haveChassis || !havePort {
				return 0, 0, false
			}
			if len(key) > 0 && (auth == nil || !hmac.Equal(auth, lldpMAC(key, dpid, port))) {
				return 0, 0, false
			}
			return dpid, port, true
		case 1:
			if n < 2 || val[0] != 7 || !strings.HasPrefix(string(val[1:]), chassisPrefix) {
				return 0, 0, false
			}
			v, err := strconv.ParseUint(string(val[1+len(chassisPrefix):]), 16, 64)
			if err != nil {
				return 0, 0, false
			}
			dpid, haveChassis = v, true
		case 2:
			if n != 5 || val[0] != 2 {
				return 0, 0, false
			}
			port, havePort = binary.BigEndian.Uint32(val[1:]), true
		case 127:
			if n == 4+authLen && [3]byte(val[:3]) == authOUI && val[3] == 1 {
				auth = val[4:]
			}
		}
	}
	return 0, 0, false
}
