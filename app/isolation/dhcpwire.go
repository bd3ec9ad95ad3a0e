package isolation

import (
	"encoding/binary"
	"errors"
	"net"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

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

	dec *codec // gopacket layers and buffers, kept between calls
}

// codec holds the layers a request is decoded into and its reply encoded
// from, with their buffers; a Request that is parsed (and answered) again
// reuses them, so that the packet-in path allocates little once warm.
type codec struct {
	eth  layers.Ethernet
	ip   layers.IPv4
	udp  layers.UDP
	dhcp layers.DHCPv4

	out struct {
		eth          layers.Ethernet
		ip           layers.IPv4
		udp          layers.UDP
		dhcp         layers.DHCPv4
		pad          gopacket.Payload
		buf          gopacket.SerializeBuffer
		data         []byte // option data
		routes       []Route
		dst, src, ch [6]byte
		sip, dip     [4]byte
		yi, gi, zero [4]byte
	}
}

func ip4(b []byte) flow.IPv4 {
	if len(b) != 4 {
		return 0
	}
	return flow.IPv4(binary.BigEndian.Uint32(b))
}

// ParseRequest decodes an Ethernet/IPv4/UDP(68->67)/BOOTP request into r
// with gopacket's layers, then checks what the server needs: an
// unfragmented BOOTREQUEST over Ethernet carrying a message type.
func ParseRequest(b []byte, r *Request) error {
	d := r.dec
	*r = Request{dec: d}
	if d == nil {
		d = &codec{}
		r.dec = d
	}
	nf := gopacket.NilDecodeFeedback
	if err := d.eth.DecodeFromBytes(b, nf); err != nil {
		return errShort
	}
	if d.eth.EthernetType != layers.EthernetTypeIPv4 {
		return errNotDHCP
	}
	r.SrcMAC = flow.MACFromBytes(d.eth.SrcMAC)
	if len(d.eth.Payload) < ipLen || d.eth.Payload[0]>>4 != 4 {
		return errShort
	}
	if err := d.ip.DecodeFromBytes(d.eth.Payload, nf); err != nil || d.ip.Protocol != layers.IPProtocolUDP {
		return errNotDHCP
	}
	if d.ip.Flags&layers.IPv4MoreFragments != 0 || d.ip.FragOffset != 0 {
		return errNotDHCP // fragment
	}
	if err := d.udp.DecodeFromBytes(d.ip.Payload, nf); err != nil {
		return errNotDHCP
	}
	if d.udp.SrcPort != 68 || d.udp.DstPort != 67 {
		return errNotDHCP
	}
	if len(d.udp.Payload) < bootpLen+4 {
		return errShort
	}
	switch err := d.dhcp.DecodeFromBytes(d.udp.Payload, nf); {
	case err == layers.InvalidMagicCookie:
		return errNotDHCP
	case err == layers.DecOptionNotEnoughData:
		// A lone option code at the very end (no length byte): the
		// options before it stand.
	case err != nil:
		return errShort
	}
	dh := &d.dhcp
	if dh.Operation != layers.DHCPOpRequest || dh.HardwareType != layers.LinkTypeEthernet || dh.HardwareLen != 6 {
		return errNotDHCP // not BOOTREQUEST over Ethernet
	}
	r.XID = dh.Xid
	r.Flags = dh.Flags
	r.CIAddr = ip4(dh.ClientIP)
	r.GIAddr = ip4(dh.RelayAgentIP)
	r.CHAddr = flow.MACFromBytes(dh.ClientHWAddr)
	for i := range dh.Options {
		o := &dh.Options[i]
		switch v := o.Data; o.Type {
		case OptMsgType:
			if len(v) == 1 {
				r.MsgType = v[0]
			}
		case OptRequestedIP:
			if len(v) == 4 {
				r.RequestedIP = ip4(v)
			}
		case OptServerID:
			if len(v) == 4 {
				r.ServerID = ip4(v)
			}
		case OptMaxMsgSize:
			if len(v) == 2 {
				r.MaxMsgSize = binary.BigEndian.Uint16(v)
			}
		}
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
// client concatenates (RFC 3396). gopacket's DHCPOption has a one-byte
// length, so the split is done here and a length never wraps.
func appendLongOpt(opts layers.DHCPOptions, code uint8, data []byte) layers.DHCPOptions {
	for len(data) > 0 {
		n := min(len(data), 255)
		opts = append(opts, layers.NewDHCPOption(layers.DHCPOpt(code), data[:n]))
		data = data[n:]
	}
	return opts
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
// replyLimit bytes of IP datagram, with gopacket's layers. It returns nil
// if gopacket refuses the layers (not expected: every field is bounded).
func reply(r *Request, ls *lease, typ uint8) []byte {
	if r.dec == nil {
		r.dec = &codec{}
	}
	o := &r.dec.out
	data := o.data[:0]
	// opt appends an option whose data is appended to data by fill.
	opts := o.dhcp.Options[:0]
	opt := func(code uint8, fill func([]byte) []byte) {
		start := len(data)
		data = fill(data)
		opts = appendLongOpt(opts, code, data[start:])
	}
	u32 := func(v uint32) func([]byte) []byte {
		return func(b []byte) []byte { return binary.BigEndian.AppendUint32(b, v) }
	}
	opt(OptMsgType, func(b []byte) []byte { return append(b, typ) })
	opt(OptServerID, u32(uint32(ls.server)))
	if typ != MsgNak {
		opt(OptLeaseTime, u32(ls.leaseSec))
		opt(OptRenewalTime, u32(ls.leaseSec/2))
		opt(OptRebindTime, u32(ls.leaseSec/8*7))
		opt(OptSubnetMask, u32(uint32(ls.mask)))
		if ls.router != 0 {
			opt(OptRouter, u32(uint32(ls.router)))
		}
		// The lease was fitted to the network's MTU; a client that
		// asks for less (option 57) gets fewer routes, then DNS servers.
		dns, routes, _, _ := fitOptions(ls.dns, ls.routes, ls.router, replyLimit(ls.mtu, r.MaxMsgSize)-fixedReplyIP)
		if len(dns) > 0 {
			opt(OptDNS, func(b []byte) []byte {
				for _, d := range dns {
					b = binary.BigEndian.AppendUint32(b, uint32(d))
				}
				return b
			})
		}
		if ls.mtu != 0 {
			opt(OptMTU, func(b []byte) []byte { return append(b, byte(ls.mtu>>8), byte(ls.mtu)) })
		}
		if len(routes) > 0 {
			// RFC 3442: a client that gets option 121 ignores option 3,
			// so the default route goes in here too.
			if ls.router != 0 {
				o.routes = append(append(o.routes[:0], routes...), Route{Dst: 0, Bits: 0, NextHop: ls.router})
				routes = o.routes
			}
			opt(OptClasslessRts, func(b []byte) []byte { return appendRoutes(b, routes) })
		}
	}
	o.data = data
	yiaddr := flow.IPv4(0)
	if typ != MsgNak {
		yiaddr = ls.ip
	}
	dstMAC, dstIP := r.CHAddr, ls.ip
	if r.Flags&0x8000 != 0 || typ == MsgNak {
		dstMAC, dstIP = flow.MAC(0xffffffffffff), flow.IPv4(0xffffffff)
	}
	o.dhcp = layers.DHCPv4{Operation: layers.DHCPOpReply, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6,
		Xid: r.XID, Flags: r.Flags, ClientIP: o.zero[:], YourClientIP: putIP(&o.yi, yiaddr), NextServerIP: o.zero[:],
		RelayAgentIP: putIP(&o.gi, r.GIAddr), ClientHWAddr: putHW(&o.ch, r.CHAddr), Options: opts}
	o.eth = layers.Ethernet{DstMAC: putHW(&o.dst, dstMAC), SrcMAC: putHW(&o.src, ls.srvMAC), EthernetType: layers.EthernetTypeIPv4}
	o.ip = layers.IPv4{Version: 4, TOS: 0x10, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: putIP(&o.sip, ls.server), DstIP: putIP(&o.dip, dstIP)}
	o.udp = layers.UDP{SrcPort: 67, DstPort: 68}
	if err := o.udp.SetNetworkLayerForChecksum(&o.ip); err != nil {
		return nil
	}
	// Zero bytes after the end option (pads) bring BOOTP to its 300-byte
	// minimum.
	o.pad = zeros[:max(0, 300-int(o.dhcp.Len()))]
	if o.buf == nil {
		o.buf = gopacket.NewSerializeBufferExpectedSize(ethLen+ipLen+udpLen+maxReplyIP, len(zeros))
	}
	if err := gopacket.SerializeLayers(o.buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&o.eth, &o.ip, &o.udp, &o.dhcp, &o.pad); err != nil {
		return nil
	}
	// The frame leaves with the packet-out: copy it out of the reused
	// buffer.
	return append([]byte(nil), o.buf.Bytes()...)
}

var zeros [300]byte

func putIP(b *[4]byte, v flow.IPv4) net.IP {
	binary.BigEndian.PutUint32(b[:], uint32(v))
	return b[:]
}

func putHW(b *[6]byte, m flow.MAC) net.HardwareAddr {
	for i := range b {
		b[i] = byte(m >> (40 - 8*i))
	}
	return b[:]
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
