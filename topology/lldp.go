package topology

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// LLDP frames Nimbus sends to discover fabric links: chassis id
// "dpid:<16 hex digits>" (locally assigned), port id the OpenFlow port
// number (port component, 4 bytes), TTL 120 s, sent to the nearest-bridge
// group address, which bridges never forward.
const (
	EthTypeLLDP = 0x88cc
	LLDPDst     = 0x0180c200000e
)

const chassisPrefix = "dpid:"

// LLDPFrame builds the discovery frame for a switch port. src is the
// port's own MAC (used as the Ethernet source).
func LLDPFrame(dpid uint64, port uint32, src uint64) []byte {
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
	tlv(0, nil)                                            // end
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

func appendMAC(b []byte, m uint64) []byte {
	return append(b, byte(m>>40), byte(m>>32), byte(m>>24), byte(m>>16), byte(m>>8), byte(m))
}

// ParseLLDP reads a frame sent by LLDPFrame. ok is false for anything
// else (other LLDP speakers, truncated or malformed frames).
func ParseLLDP(frame []byte) (dpid uint64, port uint32, ok bool) {
	if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:]) != EthTypeLLDP {
		return 0, 0, false
	}
	b := frame[14:]
	var haveChassis, havePort bool
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
			return dpid, port, haveChassis && havePort
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
		}
	}
	return 0, 0, false
}
