package isolation

import (
	"encoding/binary"
	"log/slog"
	"net/netip"

	"github.com/nimbus-sdn/nimbus/app"
	"github.com/nimbus-sdn/nimbus/flow"
)

// Route is one classless static route (DHCP option 121).
type Route struct {
	Dst     flow.IPv4
	Bits    int
	NextHop flow.IPv4
}

// lease is what the DHCP server answers a port with.
type lease struct {
	mac      flow.MAC
	ip       flow.IPv4
	mask     flow.IPv4
	router   flow.IPv4 // 0: none
	server   flow.IPv4
	srvMAC   flow.MAC
	dns      []flow.IPv4
	routes   []Route
	mtu      uint16
	leaseSec uint32
}

// leaseTable is one switch's answers by ingress OpenFlow port: Desired
// returns it as app.Desired.Handler, and the packet-in handler reads the
// one of the last applied Desired (app.PacketIn.State).
type leaseTable struct {
	byPort map[uint32]*lease
}

func ipv4(s string) (flow.IPv4, bool) {
	v, err := flow.ParseIPv4(s)
	return v, err == nil
}

// lease builds the DHCP answer of a local port from its first fixed IP on
// a DHCP-enabled IPv4 subnet.
func (a *App) lease(ns *netState, l *located) *lease {
	for _, fip := range l.port.FixedIPs {
		ip, ok := ipv4(fip.IPAddress)
		if !ok {
			continue
		}
		for _, s := range ns.Subnets {
			if s.ID != fip.SubnetID || !s.EnableDHCP {
				continue
			}
			pfx, err := netip.ParsePrefix(s.CIDR)
			if err != nil || !pfx.Addr().Is4() {
				continue
			}
			ls := &lease{mac: l.mac, ip: ip, leaseSec: a.cfg.LeaseSeconds, srvMAC: a.cfg.DHCPServerMAC}
			ls.mask = flow.IPv4(^uint32(0) << (32 - pfx.Bits()))
			if pfx.Bits() == 0 {
				ls.mask = 0
			}
			if gw, ok := ipv4(s.GatewayIP); ok {
				ls.router = gw
			}
			switch srv, ok := ns.DHCPIP[s.ID]; {
			case ok:
				ls.server = srv
				if ns.DHCPMAC != 0 {
					ls.srvMAC = ns.DHCPMAC
				}
			case ls.router != 0:
				ls.server = ls.router
			default:
				a4 := pfx.Masked().Addr().As4()
				ls.server = flow.IPv4(binary.BigEndian.Uint32(a4[:]) + 1)
			}
			for _, d := range s.DNSNameservers {
				if v, ok := ipv4(d); ok {
					ls.dns = append(ls.dns, v)
				}
			}
			for _, hr := range s.HostRoutes {
				p, err := netip.ParsePrefix(hr.Destination)
				nh, ok := ipv4(hr.NextHop)
				if err != nil || !ok || !p.Addr().Is4() {
					continue
				}
				a4 := p.Masked().Addr().As4()
				ls.routes = append(ls.routes, Route{Dst: flow.IPv4(binary.BigEndian.Uint32(a4[:])), Bits: p.Bits(), NextHop: nh})
			}
			if ns.n.MTU > 0 && ns.n.MTU < 65536 {
				ls.mtu = uint16(ns.n.MTU)
			}
			// Bound the reply to one frame of the network: a subnet with
			// more host routes (or DNS servers) than fit loses the tail,
			// with a warning (once per subnet and count).
			var dd, dr int
			ls.dns, ls.routes, dd, dr = fitOptions(ls.dns, ls.routes, ls.router, replyLimit(ls.mtu, 0)-fixedReplyIP)
			a.warnTrimmed(s.ID, dd, dr)
			return ls
		}
	}
	return nil
}

// warnTrimmed logs, once per subnet and count, that the subnet's DHCP
// reply could not hold all of its DNS servers and host routes.
func (a *App) warnTrimmed(subnet string, droppedDNS, droppedRoutes int) {
	key := [2]int{droppedDNS, droppedRoutes}
	if old, ok := a.trimmed.Load(subnet); ok && old.([2]int) == key {
		return
	}
	if droppedDNS == 0 && droppedRoutes == 0 {
		a.trimmed.Delete(subnet)
		return
	}
	a.trimmed.Store(subnet, key)
	slog.Warn("isolation: dhcp: subnet's options do not fit one reply; the tail is not sent",
		"subnet", subnet, "dropped_host_routes", droppedRoutes, "dropped_dns_servers", droppedDNS)
}

// NewSwitchHandler makes the DHCP server of one switch.
func (a *App) NewSwitchHandler(dpid uint64) app.SwitchHandler {
	return &handler{a: a, dpid: dpid}
}

type handler struct {
	a    *App
	dpid uint64
	req  Request
}

func (h *handler) FlowRemoved(uint64, flow.Match) {}

// PacketIn answers DHCPDISCOVER with OFFER and DHCPREQUEST with ACK (or
// NAK when the client asks for an address that is not its port's), as a
// packet-out to the ingress port.
func (h *handler) PacketIn(pi *app.PacketIn, out *app.Out) {
	lt, _ := pi.State.(*leaseTable) // Desired.Handler of the last applied Desired
	if lt == nil {
		return
	}
	ls := lt.byPort[pi.InPort]
	if ls == nil {
		return
	}
	if err := ParseRequest(pi.Data, &h.req); err != nil || h.req.CHAddr != ls.mac {
		return
	}
	var typ uint8
	switch h.req.MsgType {
	case MsgDiscover:
		typ = MsgOffer
	case MsgRequest:
		typ = MsgAck
		want := h.req.RequestedIP
		if want == 0 {
			want = h.req.CIAddr
		}
		if want != 0 && want != ls.ip {
			typ = MsgNak
		}
	default:
		return
	}
	data := reply(&h.req, ls, typ)
	out.PacketOuts = append(out.PacketOuts, app.PacketOut{BufferID: app.NoBuffer, InPort: flow.PortController,
		Actions: []flow.Action{flow.Output{Port: pi.InPort}}, Data: data})
}
