package topology

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// LLDP frames Nimbus sends to discover fabric links: chassis id
// "dpid:<16 hex digits>" (locally assigned), port id the OpenFlow port
// number (port component, 4 bytes), TTL 120 s, and, with a key, an
// organizationally specific TLV (OUI 4e:49:4d, subtype 1) carrying the
// first 16 bytes of HMAC-SHA256(key, dpid, port), so that a frame naming
// a switch port Nimbus did not send from fails to parse. Sent to the
// nearest-bridge group address, which bridges never forward.
//
// The frames are built and read with gopacket's layers.Ethernet and
// layers.LinkLayerDiscovery; the checks of what Nimbus sends (chassis
// and port id forms, the authenticator) sit on top.
const (
	EthTypeLLDP = 0x88cc
	LLDPDst     = 0x0180c200000e
)

const chassisPrefix = "dpid:"

var authOUI = [3]byte{0x4e, 0x49, 0x4d}

const (
	authSubtype = 1
	authLen     = 16
	lldpTTL     = 120
)

func lldpMAC(key []byte, dpid uint64, port uint32) []byte {
	m := hmac.New(sha256.New, key)
	var b [12]byte
	binary.BigEndian.PutUint64(b[:], dpid)
	binary.BigEndian.PutUint32(b[8:], port)
	m.Write(b[:])
	return m.Sum(nil)[:authLen]
}

func hwAddr(m uint64) net.HardwareAddr {
	return net.HardwareAddr{byte(m >> 40), byte(m >> 32), byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
}

// LLDPFrame builds the discovery frame for a switch port. src is the
// port's own MAC (used as the Ethernet source); key, when not empty,
// authenticates the frame. It returns nil only if gopacket refuses to
// serialize the layers, which these fixed-size fields cannot cause.
func LLDPFrame(dpid uint64, port uint32, src uint64, key []byte) []byte {
	chassis := make([]byte, 0, len(chassisPrefix)+16)
	chassis = append(chassis, chassisPrefix...)
	for i := 15; i >= 0; i-- {
		chassis = append(chassis, "0123456789abcdef"[dpid>>(4*uint(i))&0xf])
	}
	lldp := &layers.LinkLayerDiscovery{
		ChassisID: layers.LLDPChassisID{Subtype: layers.LLDPChassisIDSubTypeLocal, ID: chassis},
		PortID:    layers.LLDPPortID{Subtype: layers.LLDPPortIDSubtypePortComp, ID: binary.BigEndian.AppendUint32(nil, port)},
		TTL:       lldpTTL,
	}
	if len(key) > 0 {
		v := append(append(authOUI[:], authSubtype), lldpMAC(key, dpid, port)...)
		lldp.Values = []layers.LinkLayerDiscoveryValue{{Type: layers.LLDPTLVOrgSpecific, Length: uint16(len(v)), Value: v}}
	}
	eth := &layers.Ethernet{DstMAC: hwAddr(LLDPDst), SrcMAC: hwAddr(src), EthernetType: layers.EthernetTypeLinkLayerDiscovery}
	buf := gopacket.NewSerializeBufferExpectedSize(14, 64)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, lldp); err != nil {
		return nil
	}
	return buf.Bytes()
}

// ParseLLDP reads a frame sent by LLDPFrame with the same key. ok is
// false for anything else (other LLDP speakers, truncated or malformed
// frames, a missing or wrong authenticator when key is not empty).
func ParseLLDP(frame []byte, key []byte) (dpid uint64, port uint32, ok bool) {
	var eth layers.Ethernet
	if err := eth.DecodeFromBytes(frame, gopacket.NilDecodeFeedback); err != nil || eth.EthernetType != layers.EthernetTypeLinkLayerDiscovery {
		return 0, 0, false // a VLAN-tagged frame is not ours either
	}
	// LinkLayerDiscovery has no DecodeFromBytes: it decodes through a
	// packet, which also recovers a decoder panic as an error layer. A
	// frame with any malformed TLV is refused.
	p := gopacket.NewPacket(eth.Payload, layers.LayerTypeLinkLayerDiscovery, gopacket.DecodeOptions{NoCopy: true})
	l, _ := p.Layer(layers.LayerTypeLinkLayerDiscovery).(*layers.LinkLayerDiscovery)
	if l == nil || p.ErrorLayer() != nil {
		return 0, 0, false
	}
	id := string(l.ChassisID.ID)
	if l.ChassisID.Subtype != layers.LLDPChassisIDSubTypeLocal || !strings.HasPrefix(id, chassisPrefix) {
		return 0, 0, false
	}
	v, err := strconv.ParseUint(id[len(chassisPrefix):], 16, 64)
	if err != nil {
		return 0, 0, false
	}
	if l.PortID.Subtype != layers.LLDPPortIDSubtypePortComp || len(l.PortID.ID) != 4 {
		return 0, 0, false
	}
	dpid, port = v, binary.BigEndian.Uint32(l.PortID.ID)
	if len(key) == 0 {
		return dpid, port, true
	}
	for _, tlv := range l.Values {
		val := tlv.Value
		if tlv.Type == layers.LLDPTLVOrgSpecific && len(val) == 4+authLen && [3]byte(val[:3]) == authOUI && val[3] == authSubtype {
			if hmac.Equal(val[4:], lldpMAC(key, dpid, port)) {
				return dpid, port, true
			}
			return 0, 0, false
		}
	}
	return 0, 0, false
}
