package isolation

import (
	"encoding/binary"
	"errors"

	"github.com/nimbus-sdn/nimbus/flow"
)

// DHCP message types (option 53).
const (
	MsgDiscover uint8 = 1
	MsgOffer    uint8 = 2
	MsgRequest  uint8 = 3
	MsgDecline  uint8 = 4
	MsgAck      uint8 = 5
	MsgNak      uint8 = 6
	MsgRelease  uint8 = 7
	MsgInform   uint8 = 8
)

// DHCP option codes used here.
const (
	OptPad          = 0
	OptSubnetMask   = 1
	OptRouter       = 3
	OptDNS          = 6
	OptMTU          = 26
	OptRequestedIP  = 50
	OptLeaseTime    = 51
	OptMsgType      = 53
	OptServerID     = 54
	OptMaxMsgSize   = 57
	OptRenewalTime  = 58
	OptRebindTime   = 59
	OptClasslessRts = 121
	OptEnd          = 255
)

var magic = [4]byte{99, 130, 83, 99}

// Sizes of the fixed headers.
const (
	ethLen   = 14
	ipLen    = 20
	udpLen   = 8
	bootpLen = 236 // up to and excluding the magic cookie
)

// Errors of the parser.
var (
	errShort   = errors.New("isolation: dhcp: short packet")
	errNotDHCP = errors.New("isolation: dhcp: not a DHCP client packet")
)

// Request is a parsed DHCP client message (only what the server needs).
type Request struct {
	SrcMAC      flow.MAC
	XID         uint32
	Flags       uint16
	CIAddr      flow.IPv4
	GIAddr      flow.IPv4
	CHAddr      flow.MAC
	MsgType     uint8
	RequestedIP flow.IPv4
	ServerID    flow.IPv4
	// MaxMsgSize is the client's option 57 (the largest IP datagram it
	// accepts), 0 if absent.
	MaxMsgSize uint16
}

// ParseRequest decodes an Ethernet/IPv4/UDP(68->67)/BOOTP request into r
// without allocating.
func ParseRequest(b []byte, r *Request) error {
	*r = Request{}
	if len(b) < ethLen {
		return errShort
	}
	if binary.BigEndian.Uint16(b[12:14]) != flow.EthTypeIPv4 {
		return errNotDHCP
	}
	r.SrcMAC = flow.MACFromBytes(b[6:12])
	ip := b[ethLen:]
	if len(ip) < ipLen || ip[0]>>4 != 4 {
		return errShort
	}
	ihl := int(ip[0]&0xf) * 4
	if ihl < ipLen || len(ip) < ihl+udpLen || ip[9] != flow.ProtoUDP {
		return errNotDHCP
	}
	if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return errNotDHCP // fragment
	}
	udp := ip[ihl:]
	if binary.BigEndian.Uint16(udp[0:2]) != 68 || binary.BigEndian.Uint16(udp[2:4]) != 67 {
		return errNotDHCP
	}
	bp := udp[udpLen:]
	if ul := int(binary.BigEndian.Uint16(udp[4:6])); ul >= udpLen && ul-udpLen < len(bp) {
		bp = bp[:ul-udpLen]
	}
	if len(bp) < bootpLen+4 {
		return errShort
	}
	if bp[0] != 1 || bp[1] != 1 || bp[2] != 6 || [4]byte(bp[236:240]) != magic {
		return errNotDHCP // not BOOTREQUEST over Ethernet
	}
	r.XID = binary.BigEndian.Uint32(bp[4:8])
	r.Flags = binary.BigEndian.Uint16(bp[10:12])
	r.CIAddr = flow.IPv4(binary.BigEndian.Uint32(bp[12:16]))
	r.GIAddr = flow.IPv4(binary.BigEndian.Uint32(bp[24:28]))
	r.CHAddr = flow.MACFromBytes(bp[28:34])
	opts := bp[240:]
	for i := 0; i < len(opts); {
		code := opts[i]
		if code == OptPad {
			i++
			continue
		}
		if code == OptEnd || i+1 >= len(opts) {
			break
		}
		n := int(opts[i+1])
		if i+2+n > len(opts) {
			return errShort
		}
		v := opts[i+2 : i+2+n]
		switch code {
		case OptMsgType:
			if n == 1 {
				r.MsgType = v[0]
			}
		case OptRequestedIP:
			if n == 4 {
				r.RequestedIP = flow.IPv4(binary.BigEndian.Uint32(v))
			}
		case OptServerID:
			if n == 4 {
				r.ServerID = flow.IPv4(binary.BigEndian.Uint32(v))
			}
		case OptMaxMsgSize:
			if n == 2 {
				r.MaxMsgSize = binary.BigEndian.Uint16(v)
			}
		}
		i += 2 + n
	}
	if r.MsgType == 0 {
		return errNotDHCP
	}
	return nil
}

// Reply size bounds. A reply is one unfragmented IP datagram: it never
// exceeds the network's MTU, 1500 bytes, or the client's option 57; it is
// never held to less than the 576 bytes every client accepts (RFC 2131).
const (
	minReplyIP = 576
	maxReplyIP = 1500
	// fixedReplyIP is what every reply holds besides the variable options
	// (DNS, routes): IP, UDP and BOOTP headers, the magic cookie, message
	// type, server id, lease, renewal and rebind times, mask, router, MTU
	// and the end option.
	fixedReplyIP = ipLen + udpLen + bootpLen + 4 + 3 + 6 + 6 + 6 + 6 + 6 + 6 + 4 + 1
)

// replyLimit is the largest IP datagram a reply may be, from the
// network's MTU (0: unknown) and the client's option 57 (0: absent).
func replyLimit(mtu, clientMax uint16) int {
	limit := maxReplyIP
	if mtu != 0 && int(mtu) < limit {
		limit = int(mtu)
	}
	if clientMax != 0 && int(clientMax) < limit {
		limit = int(clientMax)
	}
	return max(limit, minReplyIP)
}

// optLen is the encoded size of an option carrying n data bytes, split
// into 255-byte pieces as RFC 3396 allows (0 for no data: not sent).
func optLen(n int) int {
	if n == 0 {
		return 0
	}
	return n + 2*((n+254)/255)
}

// appendLongOpt appends an option of any length: data longer than 255
// bytes is split into consecutive options with the same code, which the
// client concatenates (RFC 3396). A length byte never wraps.
func appendLongOpt(b []byte, code uint8, data []byte) []byte {
	for len(data) > 0 {
		n := min(len(data), 255)
		b = append(append(b, code, byte(n)), data[:n]...)
		data = data[n:]
	}
	return b
}

func routeLen(rt Route) int { return 1 + (rt.Bits+7)/8 + 4 }

// fitOptions bounds the variable options to budget bytes (encoded):
// host routes are dropped from the end first (the default route that
// stands in for option 3 is kept), then DNS servers. It returns how many
// of each it dropped; dns and routes are not modified.
func fitOptions(dns []flow.IPv4, routes []Route, router flow.IPv4, budget int) (keptDNS []flow.IPv4, keptRoutes []Route, droppedDNS, droppedRoutes int) {
	rtBytes := 0
	if router != 0 && len(routes) > 0 {
		rtBytes = routeLen(Route{NextHop: router})
	}
	for _, rt := range routes {
		rtBytes += routeLen(rt)
	}
	nr := len(routes)
	for nr > 0 && optLen(4*len(dns))+optLen(rtBytes) > budget {
		nr--
		rtBytes -= routeLen(routes[nr])
		if nr == 0 {
			rtBytes = 0 // without host routes, option 3 alone carries the router
		}
	}
	nd := len(dns)
	for nd > 0 && optLen(4*nd)+optLen(rtBytes) > budget {
		nd--
	}
	return dns[:nd], routes[:nr], len(dns) - nd, len(routes) - nr
}

// reply encodes the server's answer as a whole Ethernet frame, at most
// replyLimit bytes of IP datagram.
func reply(r *Request, ls *lease, typ uint8) []byte {
	b := make([]byte, ethLen+ipLen+udpLen, 400)
	// BOOTP fixed part.
	bp := make([]byte, bootpLen)
	bp[0], bp[1], bp[2] = 2, 1, 6
	binary.BigEndian.PutUint32(bp[4:8], r.XID)
	binary.BigEndian.PutUint16(bp[10:12], r.Flags)
	if typ != MsgNak {
		binary.BigEndian.PutUint32(bp[16:20], uint32(ls.ip))
	}
	binary.BigEndian.PutUint32(bp[24:28], uint32(r.GIAddr))
	putMAC(bp[28:34], r.CHAddr)
	b = append(b, bp...)
	b = append(b, magic[:]...)
	b = append(b, OptMsgType, 1, typ)
	b = appendIPOpt(b, OptServerID, ls.server)
	if typ != MsgNak {
		b = appendU32Opt(b, OptLeaseTime, ls.leaseSec)
		b = appendU32Opt(b, OptRenewalTime, ls.leaseSec/2)
		b = appendU32Opt(b, OptRebindTime, ls.leaseSec/8*7)
		b = appendIPOpt(b, OptSubnetMask, ls.mask)
		if ls.router != 0 {
			b = appendIPOpt(b, OptRouter, ls.router)
		}
		// The lease was fitted to the network's MTU; a client that
		// asks for less (option 57) gets fewer routes, then DNS servers.
		dns, routes, _, _ := fitOptions(ls.dns, ls.routes, ls.router, replyLimit(ls.mtu, r.MaxMsgSize)-fixedReplyIP)
		if len(dns) > 0 {
			var data []byte
			for _, d := range dns {
				data = binary.BigEndian.AppendUint32(data, uint32(d))
			}
			b = appendLongOpt(b, OptDNS, data)
		}
		if ls.mtu != 0 {
			b = append(b, OptMTU, 2, byte(ls.mtu>>8), byte(ls.mtu))
		}
		if len(routes) > 0 {
			// RFC 3442: a client that gets option 121 ignores option 3,
			// so the default route goes in here too.
			if ls.router != 0 {
				routes = append(append([]Route{}, routes...), Route{Dst: 0, Bits: 0, NextHop: ls.router})
			}
			b = appendLongOpt(b, OptClasslessRts, appendRoutes(nil, routes))
		}
	}
	b = append(b, OptEnd)
	for len(b) < ethLen+ipLen+udpLen+300 { // BOOTP minimum
		b = append(b, 0)
	}
	// Headers.
	dstMAC, dstIP := r.CHAddr, ls.ip
	if r.Flags&0x8000 != 0 || typ == MsgNak {
		dstMAC, dstIP = flow.MAC(0xffffffffffff), flow.IPv4(0xffffffff)
	}
	putMAC(b[0:6], dstMAC)
	putMAC(b[6:12], ls.srvMAC)
	binary.BigEndian.PutUint16(b[12:14], flow.EthTypeIPv4)
	ip := b[ethLen : ethLen+ipLen]
	ip[0], ip[1] = 0x45, 0x10
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(b)-ethLen))
	ip[8], ip[9] = 64, flow.ProtoUDP
	binary.BigEndian.PutUint32(ip[12:16], uint32(ls.server))
	binary.BigEndian.PutUint32(ip[16:20], uint32(dstIP))
	binary.BigEndian.PutUint16(ip[10:12], checksum(ip))
	udp := b[ethLen+ipLen : ethLen+ipLen+udpLen]
	binary.BigEndian.PutUint16(udp[0:2], 67)
	binary.BigEndian.PutUint16(udp[2:4], 68)
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(b)-ethLen-ipLen))
	binary.BigEndian.PutUint16(udp[6:8], udpChecksum(ip, b[ethLen+ipLen:]))
	return b
}

// appendRoutes appends option 121's data (without code and length).
func appendRoutes(b []byte, routes []Route) []byte {
	for _, rt := range routes {
		b = append(b, byte(rt.Bits))
		var dst [4]byte
		binary.BigEndian.PutUint32(dst[:], uint32(rt.Dst))
		b = append(b, dst[:(rt.Bits+7)/8]...)
		b = binary.BigEndian.AppendUint32(b, uint32(rt.NextHop))
	}
	return b
}

func putMAC(b []byte, m flow.MAC) {
	for i := 0; i < 6; i++ {
		b[i] = byte(m >> (40 - 8*i))
	}
}

func appendIPOpt(b []byte, code uint8, v flow.IPv4) []byte {
	return binary.BigEndian.AppendUint32(append(b, code, 4), uint32(v))
}

func appendU32Opt(b []byte, code uint8, v uint32) []byte {
	return binary.BigEndian.AppendUint32(append(b, code, 4), v)
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

func udpChecksum(ip, udp []byte) uint16 {
	s := sum16(ip[12:20], 0) + flow.ProtoUDP + uint32(len(udp))
	c := fold(sum16(udp, s))
	if c == 0 {
		c = 0xffff
	}
	return c
}
