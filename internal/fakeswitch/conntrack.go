package fakeswitch

import "github.com/nimbus-sdn/nimbus/flow"

// NATConntrack is a Conntrack that also models ct(nat): TrackNAT returns
// the packet as the recirculation after the ct action sees it (addresses
// and ports rewritten), its ct_state bits (without +trk) and ct_mark.
type NATConntrack interface {
	Conntrack
	TrackNAT(p Packet, zone uint16, commit bool, nat *flow.NAT) (Packet, uint32, uint32)
}

// tuple is a connection's 5-tuple in one direction, in one zone.
type tuple struct {
	zone         uint16
	proto        uint8
	src, dst     flow.IPv4
	sport, dport uint16
}

func tupleOf(p Packet, zone uint16) tuple {
	return tuple{zone, p.IPProto, p.IPv4Src, p.IPv4Dst, p.TPSrc, p.TPDst}
}

func (t tuple) reverse() tuple {
	return tuple{t.zone, t.proto, t.dst, t.src, t.dport, t.sport}
}

type conn struct {
	orig    tuple // as the first packet came
	natDst  flow.IPv4
	natPort uint16 // 0: the port unchanged
	// Source NAT: the original direction's source becomes natSrc:natSport.
	natSrc   flow.IPv4
	natSport uint16
	replied  bool
	mark     uint32 // ct_mark, set by a commit's exec()
}

// ConnTable is a minimal connection tracker with destination NAT, enough
// for load-balancer walks: connections are keyed by zone and 5-tuple and
// exist only once committed. A packet of the original direction is +new
// until a reply was seen, +est after; a reply is +est+rpl. A committed
// nat(dst=ip[:port]) rewrites the original direction's destination and
// the reply's source back (+dnat both ways); an existing connection keeps
// its recorded NAT whatever a later nat() asks (as the kernel's conntrack
// does); nat() with no range on a new connection changes nothing. Not
// modelled: address ranges beyond their first address, destination port
// ranges beyond their first port,
// related (ICMP) traffic, TCP state and timeouts (Expire ends one).
//
// Source NAT: a committed nat(src=ip[:lo-hi]) rewrites the original
// direction's source to ip and, with a port range, to the original source
// port if it is in the range and free, else the lowest free port of the
// range (TCP/UDP; other protocols keep their ports, as OVS's userspace
// conntrack keeps ICMP ids); the reply's destination goes back (+snat
// both ways). No free port: as in Open vSwitch's userspace conntrack
// ("tuple space exhaustion"), the packet comes back +new, not NATed, and
// nothing is committed.
type ConnTable struct {
	conns map[tuple]*conn // by original-direction tuple
	reply map[tuple]*conn // by reply-direction tuple (after NAT)
}

// NewConnTable makes an empty tracker.
func NewConnTable() *ConnTable {
	return &ConnTable{conns: map[tuple]*conn{}, reply: map[tuple]*conn{}}
}

// Len is the number of committed connections.
func (c *ConnTable) Len() int { return len(c.conns) }

// Expire forgets every connection (as a conntrack flush would).
func (c *ConnTable) Expire() {
	c.conns, c.reply = map[tuple]*conn{}, map[tuple]*conn{}
}

// SetMark records ct_mark on the committed connection p (as the ct
// action saw it, before NAT) belongs to in zone, either direction, as a
// commit's exec(set_field:...->ct_mark) does; lookups of the connection
// then return it.
func (c *ConnTable) SetMark(p Packet, zone uint16, mark uint32) {
	t := tupleOf(p, zone)
	if k, ok := c.conns[t]; ok {
		k.mark = mark
	} else if k, ok := c.reply[t]; ok {
		k.mark = mark
	}
}

// Track is TrackNAT without nat().
func (c *ConnTable) Track(p Packet, zone uint16, commit bool) (uint32, uint32) {
	_, st, mark := c.TrackNAT(p, zone, commit, nil)
	return st, mark
}

// TrackNAT looks p up in zone, commits it when asked, and applies NAT.
func (c *ConnTable) TrackNAT(p Packet, zone uint16, commit bool, nat *flow.NAT) (Packet, uint32, uint32) {
	if p.EthType != flow.EthTypeIPv4 {
		return p, flow.CTInvalid, p.CTMark
	}
	t := tupleOf(p, zone)
	if k, ok := c.conns[t]; ok {
		st := uint32(flow.CTNew)
		if k.replied {
			st = flow.CTEstablished
		}
		if nat != nil && k.natSrc != 0 {
			p.IPv4Src, p.TPSrc = k.natSrc, k.natSport
			st |= flow.CTSrcNAT
		}
		if nat != nil && k.natDst != 0 {
			p.IPv4Dst = k.natDst
			if k.natPort != 0 {
				p.TPDst = k.natPort
			}
			st |= flow.CTDstNAT
		}
		return p, st, k.mark
	}
	if k, ok := c.reply[t]; ok {
		k.replied = true
		st := uint32(flow.CTEstablished | flow.CTReply)
		if nat != nil && k.natDst != 0 {
			p.IPv4Src = k.orig.dst
			p.TPSrc = k.orig.dport
			st |= flow.CTDstNAT
		}
		if nat != nil && k.natSrc != 0 {
			p.IPv4Dst, p.TPDst = k.orig.src, k.orig.sport
			st |= flow.CTSrcNAT
		}
		return p, st, k.mark
	}
	st := uint32(flow.CTNew)
	k := &conn{orig: t}
	if nat != nil && nat.Flags&flow.NATDst != 0 && nat.IPMin != 0 {
		k.natDst, k.natPort = nat.IPMin, nat.PortMin
		p.IPv4Dst = nat.IPMin
		if nat.PortMin != 0 {
			p.TPDst = nat.PortMin
		}
		st |= flow.CTDstNAT
	}
	if commit && nat != nil && nat.Flags&flow.NATSrc != 0 && nat.IPMin != 0 {
		q := p
		q.IPv4Src = nat.IPMin
		ported := nat.PortMin != 0 && (p.IPProto == flow.ProtoTCP || p.IPProto == flow.ProtoUDP)
		free := func(port uint16) bool {
			q.TPSrc = port
			_, used := c.reply[tupleOf(q, zone).reverse()]
			return !used
		}
		switch {
		case !ported:
			if !free(p.TPSrc) {
				return p, flow.CTNew, p.CTMark
			}
		case p.TPSrc >= nat.PortMin && p.TPSrc <= nat.PortMax && free(p.TPSrc):
		default:
			ok := false
			for port := uint32(nat.PortMin); port <= uint32(nat.PortMax); port++ {
				if free(uint16(port)) {
					ok = true
					break
				}
			}
			if !ok {
				return p, flow.CTNew, p.CTMark
			}
		}
		k.natSrc, k.natSport = q.IPv4Src, q.TPSrc
		p = q
		st |= flow.CTSrcNAT
	}
	if commit {
		c.conns[t] = k
		c.reply[tupleOf(p, zone).reverse()] = k
	}
	return p, st, p.CTMark
}
