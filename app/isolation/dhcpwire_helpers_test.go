package isolation

import (
	"encoding/binary"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Hand-rolled byte helpers the tests use to build client packets and to
// check replies independently of gopacket.

var magic = [4]byte{99, 130, 83, 99}

func putMAC(b []byte, m flow.MAC) {
	for i := 0; i < 6; i++ {
		b[i] = byte(m >> (40 - 8*i))
	}
}

func appendIPOpt(b []byte, code uint8, v flow.IPv4) []byte {
	return binary.BigEndian.AppendUint32(append(b, code, 4), uint32(v))
}

func sum16(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func checksum(b []byte) uint16 { return fold(sum16(b, 0)) }
