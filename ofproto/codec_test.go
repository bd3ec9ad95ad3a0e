package ofproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
)

// Round-trip tests: encode with ofproto, decode with ofproto, compare the
// flow model's text. The byte layouts of the switch-to-controller messages
// synthesized here (flow stats, packet-in, port status...) are checked
// against ovs-ofctl in oracle_test.go, so these fixtures are trustworthy.

var (
	macA = flow.MustMAC("aa:bb:cc:dd:ee:01")
	macB = flow.MustMAC("02:00:00:00:00:02")
	ipA  = flow.MustIPv4("10.0.0.1")
	ipB  = flow.MustIPv4("192.168.1.7")
)

func ipMatch() flow.Match { return flow.M().EthType(flow.EthTypeIPv4) }

func tcpMatch() flow.Match { return ipMatch().Set(flow.IPProto, flow.ProtoTCP) }

func udpMatch() flow.Match { return ipMatch().Set(flow.IPProto, flow.ProtoUDP) }

func icmpMatch() flow.Match { return ipMatch().Set(flow.IPProto, flow.ProtoICMP) }

func arpMatch() flow.Match { return flow.M().EthType(flow.EthTypeARP) }

func vlanMatch() flow.Match { return flow.M().Set(flow.VlanVID, flow.VlanPresent|10) }

// noCT is a ct() that does not recirculate.
func noCT() flow.CT { return flow.CT{Table: flow.CTNoTable} }

// sampleFlows covers every match field, every action and every
// instruction Nimbus encodes.
func sampleFlows() []*flow.Flow {
	ct := func(mod func(*flow.CT)) flow.CT {
		c := noCT()
		mod(&c)
		return c
	}
	return []*flow.Flow{
		{Table: 0, Priority: 100, Cookie: 0x1234, Match: flow.M().InPort(1).EthDst(macA),
			Actions: []flow.Action{flow.Output{Port: 2}}, Goto: 0},
		{Table: 1, Priority: 10, IdleTimeout: 60, HardTimeout: 300, Flags: flow.FlagSendFlowRem,
			Match: flow.M().SetMasked(flow.Metadata, 0x50, 0xff).SetMasked(flow.TunnelID, 0x1000, 0xf000).
				Set(flow.TunIPv4Src, uint64(ipA)).SetMasked(flow.TunIPv4Dst, uint64(ipB), 0xffffff00),
			Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: 200}}},
		{Table: 2, Priority: 20, Match: flow.M().Reg(0, 1).Reg(1, 2).Reg(2, 3).Reg(3, 4).
			Reg(4, 5).Reg(5, 6).Reg(6, 7).SetMasked(flow.Reg7, 0x80, 0xf0),
			Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}},
		{Table: 3, Priority: 30, Match: ipMatch().SetMasked(flow.CTState, flow.CTTracked|flow.CTEstablished,
			flow.CTTracked|flow.CTEstablished|flow.CTNew|flow.CTInvalid).Set(flow.CTZone, 5).
			SetMasked(flow.CTMark, 1, 0xff),
			Actions: []flow.Action{flow.Output{Port: flow.PortNormal}}},
		{Table: 4, Priority: 40, Match: flow.M().SetMasked(flow.EthSrc, uint64(macB), 0xffffff000000).
			SetMasked(flow.EthDst, 0x010000000000, 0x010000000000),
			Actions: []flow.Action{flow.Output{Port: flow.PortFlood}, flow.Output{Port: flow.PortInPort}}},
		{Table: 5, Priority: 50, Match: vlanMatch().Set(flow.VlanPCP, 3),
			Actions: []flow.Action{flow.PopVLAN{}, flow.Output{Port: flow.PortAll}}},
		{Table: 5, Priority: 51, Match: flow.M().SetMasked(flow.VlanVID, flow.VlanPresent, flow.VlanPresent),
			Actions: []flow.Action{flow.Output{Port: flow.PortLocal}}},
		{Table: 5, Priority: 52, Match: flow.M().Set(flow.VlanVID, 0),
			Actions: []flow.Action{flow.PushVLAN{EthType: flow.EthTypeVLAN},
				flow.SetField{F: flow.VlanVID, Value: flow.VlanPresent | 42}, flow.Output{Port: 3}}},
		{Table: 6, Priority: 60, Match: tcpMatch().SetMasked(flow.IPv4Src, uint64(ipA), 0xffffff00).
			Set(flow.IPv4Dst, uint64(ipB)).Set(flow.IPDSCP, 46).Set(flow.TCPSrc, 1024).SetMasked(flow.TCPDst, 0x1000, 0xf000),
			Actions: []flow.Action{flow.DecTTL{}, flow.GroupAction{ID: 7}}},
		{Table: 7, Priority: 70, Match: udpMatch().Set(flow.UDPSrc, 68).SetMasked(flow.UDPDst, 67, 0xffff),
			Actions: []flow.Action{flow.SetField{F: flow.UDPSrc, Value: 1000}, flow.SetField{F: flow.UDPDst, Value: 2000}}},
		{Table: 8, Priority: 80, Match: icmpMatch().Set(flow.ICMPv4Type, 8).Set(flow.ICMPv4Code, 0),
			Actions: []flow.Action{flow.SetField{F: flow.IPv4Src, Value: uint64(ipB)}, flow.SetField{F: flow.IPv4Dst, Value: uint64(ipA)},
				flow.SetField{F: flow.IPDSCP, Value: 10}, flow.Output{Port: flow.PortInPort}}},
		{Table: 8, Priority: 81, Match: ipMatch().Set(flow.IPTTL, 1),
			Actions: []flow.Action{flow.Output{Port: flow.PortController, MaxLen: flow.MaxLenNoBuffer}}},
		{Table: 9, Priority: 90, Match: arpMatch().Set(flow.ARPOp, 1).SetMasked(flow.ARPSpa, uint64(ipA), 0xffff0000).
			Set(flow.ARPTpa, uint64(ipB)).Set(flow.ARPSha, uint64(macA)).SetMasked(flow.ARPTha, 0, 0xffffffffff00),
			Actions: []flow.Action{flow.SetField{F: flow.ARPOp, Value: 2}, flow.SetField{F: flow.ARPSha, Value: uint64(macB)},
				flow.SetField{F: flow.ARPTha, Value: uint64(macA)}, flow.SetField{F: flow.ARPSpa, Value: uint64(ipB)},
				flow.SetField{F: flow.ARPTpa, Value: uint64(ipA)}, flow.SetField{F: flow.EthSrc, Value: uint64(macB)},
				flow.SetField{F: flow.EthDst, Value: uint64(macA)}, flow.Output{Port: flow.PortInPort}}},
		{Table: 10, Priority: 100, Match: tcpMatch(),
			Actions: []flow.Action{flow.SetField{F: flow.TCPSrc, Value: 80}, flow.SetField{F: flow.TCPDst, Value: 8080},
				flow.SetField{F: flow.Metadata, Value: 0xabcdef}, flow.SetField{F: flow.TunnelID, Value: 5},
				flow.SetField{F: flow.TunIPv4Dst, Value: uint64(ipB)}, flow.SetField{F: flow.TunIPv4Src, Value: uint64(ipA)},
				flow.SetField{F: flow.Reg0, Value: 0xdeadbeef}, flow.SetField{F: flow.Reg7, Value: 1},
				flow.SetField{F: flow.Reg3, Value: 0x50, Mask: 0xf0}, flow.SetField{F: flow.Metadata, Value: 0x100000000, Mask: 0xffff00000000},
				flow.SetField{F: flow.Reg1, Value: 0x80000000, Mask: 0x80000000},
				flow.Move{Src: flow.Reg0, Dst: flow.Reg2, SrcOfs: 0, DstOfs: 16, NBits: 16},
				flow.Move{Src: flow.TunnelID, Dst: flow.Metadata, SrcOfs: 0, DstOfs: 0, NBits: 64},
				flow.Resubmit{InPort: flow.PortInPort, Table: 11}, flow.Resubmit{InPort: 3, Table: 12},
				flow.Multipath{Fields: flow.HashNwSrc, Algorithm: flow.MPHRW, MaxLink: 2, Dst: flow.Reg6, Ofs: 16, NBits: 16}}},
		{Table: 11, Priority: 110, Match: ipMatch(),
			Actions: []flow.Action{ct(func(c *flow.CT) {
				c.Commit, c.Zone = true, 5
				c.NAT = &flow.NAT{Flags: flow.NATSrc, IPMin: ipA, IPMax: flow.MustIPv4("10.0.0.5"), PortMin: 1000, PortMax: 2000}
			})}},
		{Table: 11, Priority: 111, Match: ipMatch(),
			Actions: []flow.Action{ct(func(c *flow.CT) {
				c.ZoneSrc, c.Table = flow.Reg5, 12
			})}},
		{Table: 11, Priority: 112, Match: ipMatch(),
			Actions: []flow.Action{ct(func(c *flow.CT) {
				c.Commit, c.Zone, c.Table = true, 7, 13
				c.NAT = &flow.NAT{Flags: flow.NATDst | flow.NATPersistent | flow.NATProtoHash, IPMin: ipB, PortMin: 80}
				c.Exec = []flow.SetField{{F: flow.CTMark, Value: 0x1}, {F: flow.CTMark, Value: 0x100, Mask: 0xff00}}
			})}},
		{Table: 11, Priority: 113, Match: ipMatch(),
			Actions: []flow.Action{ct(func(c *flow.CT) {
				c.Table = 14
				c.NAT = &flow.NAT{}
			})}},
		{Table: 11, Priority: 114, Match: ipMatch(),
			Actions: []flow.Action{ct(func(c *flow.CT) {
				c.Commit, c.ZoneSrc = true, flow.Reg6
				c.NAT = &flow.NAT{Flags: flow.NATDst | flow.NATProtoRand, IPMin: ipA, IPMax: ipB}
			})}},
		{Table: 12, Priority: 120, Cookie: 0xfeed, Match: ipMatch(), Meter: 3,
			Actions:  []flow.Action{flow.Output{Port: 1}},
			Metadata: 0x5, MetadataMask: 0xff, Goto: 13},
		{Table: 13, Priority: 0, Metadata: 0xabc, MetadataMask: ^uint64(0)},
		{Table: 16, Priority: 160, Match: tcpMatch().SetMasked(flow.TCPDst, 0x1f40, 0xfff8),
			Actions: []flow.Action{flow.Conjunction{ID: 9, Clause: 2, NClauses: 3}, flow.Conjunction{ID: 1 << 31, Clause: 1, NClauses: 2}}},
		{Table: 16, Priority: 160, Match: ipMatch().Set(flow.ConjID, 9), Goto: 17},
		{Table: 14, Priority: 1, Goto: 15},
		{Table: 15, Priority: 0},
	}
}

// sampleGroups covers every group type Nimbus uses.
func sampleGroups() []*flow.Group {
	return []*flow.Group{
		{ID: 1, Type: flow.GroupAll, Buckets: []flow.Bucket{
			{Actions: []flow.Action{flow.Output{Port: 1}}},
			{Actions: []flow.Action{flow.SetField{F: flow.Reg0, Value: 3}, flow.Resubmit{InPort: flow.PortInPort, Table: 4}}}}},
		{ID: 2, Type: flow.GroupSelect, Buckets: []flow.Bucket{
			{Weight: 10, Actions: []flow.Action{flow.SetField{F: flow.EthDst, Value: uint64(macA)}, flow.Output{Port: 2}}},
			{Weight: 20, Actions: []flow.Action{flow.Output{Port: 3}}}}},
		{ID: 3, Type: flow.GroupFF, Buckets: []flow.Bucket{
			{WatchPort: 4, Actions: []flow.Action{flow.Output{Port: 4}}},
			{WatchPort: 5, Actions: []flow.Action{flow.Output{Port: 5}}}}},
		{ID: 4, Type: flow.GroupIndirect, Buckets: []flow.Bucket{
			{Actions: []flow.Action{flow.GroupAction{ID: 1}}}}},
		{ID: 5, Type: flow.GroupAll},
	}
}

// sampleMeters covers both band types, with and without burst.
func sampleMeters() []*flow.Meter {
	return []*flow.Meter{
		{ID: 1, Flags: flow.MeterKbps | flow.MeterBurst | flow.MeterStats, Bands: []flow.Band{{Type: flow.BandDrop, Rate: 1000, Burst: 100}}},
		{ID: 2, Flags: flow.MeterPktps, Bands: []flow.Band{{Type: flow.BandDSCPRemark, Rate: 50, PrecLevel: 1}, {Type: flow.BandDrop, Rate: 100}}},
		{ID: 3, Flags: flow.MeterKbps},
	}
}

// msgBody strips the OpenFlow header.
func msgBody(msg []byte) []byte { return msg[HeaderLen:] }

// flowStatsFromFlowMod turns an encoded OFPT_FLOW_MOD into the ofp_flow_stats
// entry a switch would dump for it (same match and instructions bytes).
func flowStatsFromFlowMod(fm []byte, durationSec uint32, packets, bytes uint64) []byte {
	fm = fm[:be.Uint16(fm[2:])]
	var e []byte
	e = put16(e, 0) // length, fixed below
	e = append(e, fm[24], 0)
	e = put32(e, durationSec)
	e = put32(e, 0)             // duration_nsec
	e = append(e, fm[30:32]...) // priority
	e = append(e, fm[26:30]...) // idle, hard timeouts
	e = append(e, fm[44:46]...) // flags
	e = pad(e, 4)
	e = append(e, fm[8:16]...) // cookie
	e = put64(e, packets)
	e = put64(e, bytes)
	e = append(e, fm[48:]...)
	be.PutUint16(e, uint16(len(e)))
	return e
}

// groupDescFromGroupMod turns an encoded OFPT_GROUP_MOD into the
// ofp_group_desc entry a switch would dump for it.
func groupDescFromGroupMod(gm []byte) []byte {
	gm = gm[:be.Uint16(gm[2:])]
	var e []byte
	e = put16(e, uint16(8+len(gm)-16))
	e = append(e, gm[10], 0)
	e = append(e, gm[12:16]...)
	return append(e, gm[16:]...)
}

// meterConfigFromMeterMod turns an encoded OFPT_METER_MOD into the
// ofp_meter_config entry a switch would dump for it.
func meterConfigFromMeterMod(mm []byte) []byte {
	mm = mm[:be.Uint16(mm[2:])]
	var e []byte
	e = put16(e, uint16(8+len(mm)-16))
	e = append(e, mm[10:16]...) // flags, meter_id
	return append(e, mm[16:]...)
}

// multipartReply wraps a reply body in an OFPT_MULTIPART_REPLY.
func multipartReply(xid uint32, mpType, flags uint16, bodyBytes []byte) []byte {
	b, s := startMsg(nil, TypeMultipartReply, xid)
	b = put16(b, mpType)
	b = put16(b, flags)
	b = pad(b, 4)
	b = append(b, bodyBytes...)
	return must(finishMsg(b, s))
}

// testFrame is an Ethernet/IPv4/UDP frame (DHCP discover-ish) for
// packet-in and packet-out data.
func testFrame() []byte {
	f := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01, 0x08, 0x00,
		0x45, 0x00, 0x00, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,
		0x0a, 0x00, 0x00, 0x01, 0xc0, 0xa8, 0x01, 0x07,
		0x00, 0x44, 0x00, 0x43, 0x00, 0x09, 0x00, 0x00, 0x42,
	}
	// IPv4 header checksum.
	var sum uint32
	for i := 14; i < 34; i += 2 {
		sum += uint32(f[i])<<8 | uint32(f[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	be.PutUint16(f[24:], ^uint16(sum))
	return f
}

// packetInMsg builds an OFPT_PACKET_IN as OVS sends it.
func packetInMsg(xid, bufferID uint32, reason, table uint8, cookie uint64, m flow.Match, data []byte) []byte {
	b, s := startMsg(nil, TypePacketIn, xid)
	b = put32(b, bufferID)
	b = put16(b, uint16(len(data)))
	b = append(b, reason, table)
	b = put64(b, cookie)
	b = must(AppendMatch(b, m))
	b = pad(b, 2)
	b = append(b, data...)
	return must(finishMsg(b, s))
}

// appendPort appends an ofp_port.
func appendPort(b []byte, p Port) []byte {
	b = put32(b, p.No)
	b = pad(b, 4)
	b = appendUint(b, uint64(p.HWAddr), 6)
	b = pad(b, 2)
	var name [16]byte
	copy(name[:], p.Name)
	b = append(b, name[:]...)
	b = put32(b, p.Config)
	b = put32(b, p.State)
	b = put32(b, 0x840) // curr: 10GB_FD | COPPER
	b = put32(b, 0)     // advertised
	b = put32(b, 0)     // supported
	b = put32(b, 0)     // peer
	b = put32(b, p.CurrSpeed)
	return put32(b, 0) // max_speed
}

func samplePorts() []Port {
	return []Port{
		{No: 1, HWAddr: macA, Name: "veth1", CurrSpeed: 10000000},
		{No: 2, HWAddr: macB, Name: "tap-0123456789a", Config: PortConfigDown, State: PortStateDown},
		{No: flow.PortLocal, HWAddr: 0x020000000003, Name: "br-int"},
	}
}

func portStatusMsg(xid uint32, reason uint8, p Port) []byte {
	b, s := startMsg(nil, TypePortStatus, xid)
	b = append(b, reason)
	b = pad(b, 7)
	b = appendPort(b, p)
	return must(finishMsg(b, s))
}

func flowRemovedMsg(xid uint32, f *flow.Flow, reason uint8) []byte {
	b, s := startMsg(nil, TypeFlowRemoved, xid)
	b = put64(b, f.Cookie)
	b = put16(b, f.Priority)
	b = append(b, reason, f.Table)
	b = put32(b, 12) // duration_sec
	b = put32(b, 0)  // duration_nsec
	b = put16(b, f.IdleTimeout)
	b = put16(b, f.HardTimeout)
	b = put64(b, 3)   // packet_count
	b = put64(b, 180) // byte_count
	b = must(AppendMatch(b, f.Match))
	return must(finishMsg(b, s))
}

func featuresReplyMsg(xid uint32, f Features) []byte {
	b, s := startMsg(nil, TypeFeaturesReply, xid)
	b = put64(b, f.DPID)
	b = put32(b, f.NBuffers)
	b = append(b, f.NTables, f.AuxID)
	b = pad(b, 2)
	b = put32(b, f.Capabilities)
	b = put32(b, 0) // reserved
	return must(finishMsg(b, s))
}

func roleReplyMsg(xid, role uint32, gen uint64) []byte {
	b, s := startMsg(nil, TypeRoleReply, xid)
	b = put32(b, role)
	b = pad(b, 4)
	b = put64(b, gen)
	return must(finishMsg(b, s))
}

// helloMsg builds a HELLO of the given version, with a version bitmap
// element when bitmap != 0.
func helloMsg(version uint8, xid, bitmap uint32) []byte {
	b := []byte{version, TypeHello, 0, 0}
	b = put32(b, xid)
	if bitmap != 0 {
		b = put16(b, 1)
		b = put16(b, 8)
		b = put32(b, bitmap)
	}
	be.PutUint16(b[2:], uint16(len(b)))
	return b
}

func TestRoundTripFlows(t *testing.T) {
	for _, f := range sampleFlows() {
		t.Run(f.KeyText(), func(t *testing.T) {
			if err := f.Match.Validate(); err != nil {
				t.Fatalf("fixture match invalid: %v", err)
			}
			for _, a := range f.Actions {
				if err := ValidateAction(a); err != nil {
					t.Fatalf("fixture action invalid: %v", err)
				}
			}
			msg := must(AppendFlowMod(nil, 9, f, FlowModOpts{Command: FCAdd, BufferID: NoBuffer}))
			h, err := ParseHeader(msg)
			if err != nil || int(h.Length) != len(msg) || h.Type != TypeFlowMod || h.Xid != 9 {
				t.Fatalf("header %+v, %v (len %d)", h, err, len(msg))
			}
			if len(msg)%8 != 0 {
				t.Errorf("flow mod length %d is not a multiple of 8", len(msg))
			}
			entry := flowStatsFromFlowMod(msg, 5, 10, 1000)
			got, err := ParseFlowStats(entry)
			if err != nil {
				t.Fatalf("ParseFlowStats: %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("%d entries", len(got))
			}
			fs := got[0]
			if fs.Unknown || fs.DurationSec != 5 || fs.Packets != 10 || fs.Bytes != 1000 {
				t.Errorf("counters/unknown: %+v", fs)
			}
			if fs.Flow.String() != f.String() {
				t.Errorf("round trip changed the flow\n got %s\nwant %s", fs.Flow.String(), f.String())
			}
			if fs.Flow.Flags != f.Flags {
				t.Errorf("flags %#x, want %#x", fs.Flow.Flags, f.Flags)
			}

			// The match alone.
			mb := must(AppendMatch(nil, f.Match))
			m, n, err := ParseMatch(mb)
			if err != nil || n != len(mb) || m.String() != f.Match.String() {
				t.Errorf("ParseMatch: %v, n=%d/%d, %q want %q", err, n, len(mb), m, f.Match)
			}
			// The actions alone.
			ab := must(AppendActions(nil, f.Actions))
			as, err := ParseActions(ab)
			if err != nil || flow.ActionsString(as) != flow.ActionsString(f.Actions) {
				t.Errorf("ParseActions: %v: %s, want %s", err, flow.ActionsString(as), flow.ActionsString(f.Actions))
			}
			for i, a := range f.Actions {
				one := must(AppendActions(nil, []flow.Action{a}))
				if len(one)%8 != 0 {
					t.Errorf("action %d (%s) is %d bytes, not a multiple of 8", i, a, len(one))
				}
			}
		})
	}
}

func TestRoundTripFlowStatsMultiple(t *testing.T) {
	var all []byte
	flows := sampleFlows()
	for i, f := range flows {
		all = append(all, flowStatsFromFlowMod(must(AppendFlowMod(nil, uint32(i), f, FlowModOpts{Command: FCAdd})), 1, 2, 3)...)
	}
	got, err := ParseFlowStats(all)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(flows) {
		t.Fatalf("%d flows, want %d", len(got), len(flows))
	}
	for i := range flows {
		if got[i].Flow.String() != flows[i].String() {
			t.Errorf("flow %d: %s, want %s", i, got[i].Flow.String(), flows[i].String())
		}
	}
	// Truncating anywhere inside the dump must fail cleanly.
	for _, cut := range []int{1, 8, 55, 57, len(all) - 1} {
		if _, err := ParseFlowStats(all[:len(all)-cut]); !errors.Is(err, ErrMalformed) {
			t.Errorf("cut %d: %v, want ErrMalformed", cut, err)
		}
	}
}

func TestRoundTripUnknownFieldsAndActions(t *testing.T) {
	// A flow that matches ipv6 (not modelled) and outputs with an action
	// Nimbus does not model (set_queue, type 21) is flagged, not rejected.
	f := &flow.Flow{Table: 1, Priority: 5, Match: ipMatch(), Actions: []flow.Action{flow.Output{Port: 1}}}
	fm := must(AppendFlowMod(nil, 1, f, FlowModOpts{Command: FCAdd}))
	entry := flowStatsFromFlowMod(fm, 0, 0, 0)
	// Rebuild the entry with an extra OXM (OXM_OF_IP_ECN, code 9) and a
	// set_queue action.
	var m []byte
	m = put16(m, 1)
	m = put16(m, 4+6+5)
	m = append(m, 0x80, 0x00, 0x0a, 0x02, 0x08, 0x00) // eth_type=ip
	m = append(m, 0x80, 0x00, 0x12, 0x01, 0x01)       // ip_ecn=1
	m = pad8(m, 0)
	var in []byte
	in = put16(in, itApplyActions)
	in = put16(in, 8+16+8)
	in = pad(in, 4)
	in = must(appendAction(in, flow.Output{Port: 1}))
	in = put16(in, 21)
	in = put16(in, 8)
	in = put32(in, 3)
	e := append(append(append([]byte(nil), entry[:48]...), m...), in...)
	be.PutUint16(e, uint16(len(e)))
	got, err := ParseFlowStats(e)
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Unknown {
		t.Error("flow with an unmodelled field and action not flagged Unknown")
	}
	if s := got[0].Flow.String(); !strings.Contains(s, "ip") || !strings.Contains(s, "output:1,opaque(type 21)") {
		t.Errorf("approximate flow: %s", s)
	}
}

func TestRoundTripFlowModCommands(t *testing.T) {
	f := sampleFlows()[0]
	for _, o := range []FlowModOpts{
		{Command: FCAdd, BufferID: NoBuffer},
		{Command: FCAdd, BufferID: 77},
		{Command: FCModifyStrict, CookieMask: ^uint64(0)},
		{Command: FCDeleteStrict, CookieMask: ^uint64(0)},
		{Command: FCDelete, CookieMask: 0xff00},
	} {
		msg := must(AppendFlowMod(nil, 1, f, o))
		if got := msg[25]; got != o.Command {
			t.Errorf("command %d encoded as %d", o.Command, got)
		}
		if got := be.Uint64(msg[16:]); got != o.CookieMask {
			t.Errorf("cookie mask %#x, want %#x", got, o.CookieMask)
		}
		wantBuf := o.BufferID
		if o.Command != FCAdd && wantBuf == 0 {
			wantBuf = NoBuffer
		}
		if got := be.Uint32(msg[32:]); got != wantBuf {
			t.Errorf("command %d: buffer id %#x, want %#x", o.Command, got, wantBuf)
		}
		del := o.Command == FCDelete || o.Command == FCDeleteStrict
		mlen := len(must(AppendMatch(nil, f.Match)))
		if hasIns := len(msg) > 48+mlen; hasIns == del {
			t.Errorf("command %d: instructions present=%v", o.Command, hasIns)
		}
	}
}

func TestRoundTripGroups(t *testing.T) {
	var all []byte
	for _, g := range sampleGroups() {
		msg := must(AppendGroupMod(nil, 1, GCAdd, g))
		d := groupDescFromGroupMod(msg)
		all = append(all, d...)
		got, err := ParseGroupDesc(d)
		if err != nil || len(got) != 1 {
			t.Fatalf("group %d: %v (%d)", g.ID, err, len(got))
		}
		if got[0].String() != g.String() {
			t.Errorf("group round trip\n got %s\nwant %s", got[0].String(), g.String())
		}
	}
	got, err := ParseGroupDesc(all)
	if err != nil || len(got) != len(sampleGroups()) {
		t.Fatalf("all groups: %v (%d)", err, len(got))
	}
	del := must(AppendGroupMod(nil, 1, GCDelete, sampleGroups()[0]))
	if len(del) != 16 {
		t.Errorf("group delete is %d bytes, want 16 (no buckets)", len(del))
	}
}

func TestRoundTripMeters(t *testing.T) {
	var all []byte
	for _, m := range sampleMeters() {
		msg := must(AppendMeterMod(nil, 1, GCAdd, m))
		c := meterConfigFromMeterMod(msg)
		all = append(all, c...)
		got, err := ParseMeterConfig(c)
		if err != nil || len(got) != 1 {
			t.Fatalf("meter %d: %v (%d)", m.ID, err, len(got))
		}
		if got[0].String() != m.String() {
			t.Errorf("meter round trip\n got %s\nwant %s", got[0].String(), m.String())
		}
		for i, bd := range got[0].Bands {
			if bd != m.Bands[i] {
				t.Errorf("meter %d band %d: %+v, want %+v", m.ID, i, bd, m.Bands[i])
			}
		}
	}
	got, err := ParseMeterConfig(all)
	if err != nil || len(got) != len(sampleMeters()) {
		t.Fatalf("all meters: %v (%d)", err, len(got))
	}
}

func TestRoundTripPacketIn(t *testing.T) {
	frame := testFrame()
	m := flow.M().InPort(7).Set(flow.Reg0, 0x11).Set(flow.TunnelID, 0x99).SetMasked(flow.Metadata, 1, 1)
	msg := packetInMsg(3, NoBuffer, 1, 4, 0xc0ffee, m, frame)
	for _, full := range []bool{false, true} {
		p, err := ParsePacketIn(msgBody(msg), full)
		if err != nil {
			t.Fatal(err)
		}
		if p.BufferID != NoBuffer || p.TotalLen != uint16(len(frame)) || p.Reason != 1 || p.Table != 4 ||
			p.Cookie != 0xc0ffee || p.InPort != 7 || !bytes.Equal(p.Data, frame) {
			t.Errorf("full=%v: %+v", full, p)
		}
		if full && p.Match.String() != m.String() {
			t.Errorf("match %s, want %s", p.Match, m)
		} else if !full && p.Match != nil {
			t.Errorf("fast path decoded the match: %s", p.Match)
		}
	}
	// A packet-in without in_port in its match (OVS always sends it, but
	// the decoder must not invent one) and with no data.
	p, err := ParsePacketIn(msgBody(packetInMsg(1, 5, 0, 0, 0, nil, nil)), true)
	if err != nil || p.InPort != 0 || len(p.Data) != 0 || p.BufferID != 5 {
		t.Errorf("empty packet-in: %+v, %v", p, err)
	}
	// Truncations fail with ErrMalformed.
	b := msgBody(msg)
	for _, n := range []int{0, 10, 23, 24, 30, 16 + 4 + 8} {
		if _, err := ParsePacketIn(b[:n], true); !errors.Is(err, ErrMalformed) {
			t.Errorf("truncated to %d: %v", n, err)
		}
	}
}

func TestRoundTripPorts(t *testing.T) {
	var desc []byte
	for _, p := range samplePorts() {
		desc = appendPort(desc, p)
		r, got, err := ParsePortStatus(msgBody(portStatusMsg(1, PortModified, p)))
		if err != nil || r != PortModified || got != p {
			t.Errorf("port status: %d %+v %v, want %+v", r, got, err, p)
		}
	}
	got, err := ParsePortDesc(desc)
	if err != nil || len(got) != len(samplePorts()) {
		t.Fatalf("port desc: %v (%d)", err, len(got))
	}
	for i, p := range samplePorts() {
		if got[i] != p {
			t.Errorf("port %d: %+v, want %+v", i, got[i], p)
		}
		if got[i].Up() != (i != 1) {
			t.Errorf("port %d: Up()=%v", i, got[i].Up())
		}
	}
	if _, err := ParsePortDesc(desc[:100]); !errors.Is(err, ErrMalformed) {
		t.Errorf("ragged port desc: %v", err)
	}
	if _, _, err := ParsePortStatus(msgBody(portStatusMsg(1, 0, samplePorts()[0]))[:70]); !errors.Is(err, ErrMalformed) {
		t.Errorf("short port status: %v", err)
	}
}

func TestRoundTripFlowRemoved(t *testing.T) {
	for _, f := range sampleFlows()[:4] {
		r, err := ParseFlowRemoved(msgBody(flowRemovedMsg(1, f, 1)))
		if err != nil {
			t.Fatal(err)
		}
		if r.Cookie != f.Cookie || r.Priority != f.Priority || r.Reason != 1 || r.Table != f.Table || r.Match.String() != f.Match.String() {
			t.Errorf("flow removed %+v, want %s", r, f)
		}
	}
	if _, err := ParseFlowRemoved(make([]byte, 43)); !errors.Is(err, ErrMalformed) {
		t.Errorf("short flow removed: %v", err)
	}
}

func TestRoundTripFeaturesRoleError(t *testing.T) {
	want := Features{DPID: 0x0000aabbccddeeff, NBuffers: 0, NTables: 254, AuxID: 0, Capabilities: 0x4f}
	got, err := ParseFeatures(msgBody(featuresReplyMsg(1, want)))
	if err != nil || got != want {
		t.Errorf("features %+v, %v; want %+v", got, err, want)
	}
	if _, err := ParseFeatures(make([]byte, 23)); !errors.Is(err, ErrMalformed) {
		t.Errorf("short features: %v", err)
	}

	role, gen, err := ParseRoleReply(msgBody(roleReplyMsg(1, RoleSlave, 0x123456789)))
	if err != nil || role != RoleSlave || gen != 0x123456789 {
		t.Errorf("role reply %d %#x %v", role, gen, err)
	}
	if _, _, err := ParseRoleReply(make([]byte, 15)); !errors.Is(err, ErrMalformed) {
		t.Errorf("short role reply: %v", err)
	}

	req := AppendRoleRequest(nil, 77, RoleMaster, 5)
	emsg := AppendError(nil, 77, ErrRoleRequestFail, ErrCodeStale, req)
	h, _ := ParseHeader(emsg)
	e, err := ParseError(h.Xid, msgBody(emsg))
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != ErrRoleRequestFail || e.Code != ErrCodeStale || e.Xid != 77 || e.ReqType != TypeRoleRequest || !bytes.Equal(e.Data, req) {
		t.Errorf("error %+v", e)
	}
	if s := e.Error(); !strings.Contains(s, "ROLE_REQUEST_FAILED/STALE") || !strings.Contains(s, "xid 77") {
		t.Errorf("error text %q", s)
	}
	long := AppendError(nil, 1, ErrBadRequest, ErrCodeBadLen, make([]byte, 200))
	if len(long) != HeaderLen+4+64 {
		t.Errorf("error data not capped at 64 bytes: %d", len(long))
	}
	if _, err := ParseError(1, []byte{0, 1}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short error: %v", err)
	}
}

func TestHelloSupports13(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		want bool
	}{
		{"ours", AppendHello(nil, 1), true},
		{"1.0 only, no bitmap", helloMsg(1, 1, 0), false},
		{"1.0 only, bitmap", helloMsg(1, 1, 1<<1), false},
		{"1.3 no bitmap", helloMsg(4, 1, 0), true},
		{"1.5 no bitmap", helloMsg(6, 1, 0), true},
		{"1.0 and 1.3 bitmap", helloMsg(4, 1, 1<<1|1<<4), true},
		{"1.0 to 1.5 bitmap", helloMsg(6, 1, 0x7e), true},
		{"1.4 and 1.5 only", helloMsg(6, 1, 1<<5|1<<6), false},
	} {
		h, err := ParseHeader(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := HelloSupports13(h, tc.msg[HeaderLen:h.Length])
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	// An unknown element before the bitmap is skipped (padded to 8).
	b := helloMsg(4, 1, 0)
	b = append(b, 0, 9, 0, 5, 1, 0, 0, 0) // unknown element, length 5, padded
	b = put16(b, 1)
	b = put16(b, 8)
	b = put32(b, 1<<1)
	be.PutUint16(b[2:], uint16(len(b)))
	h, _ := ParseHeader(b)
	if ok, err := HelloSupports13(h, b[8:]); err != nil || ok {
		t.Errorf("bitmap after unknown element: %v %v", ok, err)
	}
	if _, err := HelloSupports13(h, []byte{0, 1, 0, 2}); !errors.Is(err, ErrMalformed) {
		t.Errorf("element length 2: %v", err)
	}
}

func TestRoundTripBundle(t *testing.T) {
	f := sampleFlows()[0]
	ctl := AppendBundleControl(nil, 5, 42, BundleOpenReply, BundleAtomic|BundleOrdered)
	id, typ, ok, err := ParseBundleControl(msgBody(ctl))
	if err != nil || !ok || id != 42 || typ != BundleOpenReply {
		t.Errorf("bundle control: %d %d %v %v", id, typ, ok, err)
	}
	add := must(AppendBundleAdd(nil, 6, 42, BundleAtomic, func(b []byte) ([]byte, error) {
		return AppendFlowMod(b, 6, f, FlowModOpts{Command: FCAdd})
	}))

	if _, _, ok, err := ParseBundleControl(msgBody(add)); ok || err != nil {
		t.Errorf("bundle add parsed as control: %v %v", ok, err)
	}
	inner := add[HeaderLen+16:]
	if !bytes.Equal(inner, must(AppendFlowMod(nil, 6, f, FlowModOpts{Command: FCAdd}))) {
		t.Errorf("bundle add does not carry the flow mod verbatim")
	}
	if _, _, _, err := ParseBundleControl(msgBody(ctl)[:12]); !errors.Is(err, ErrMalformed) {
		t.Errorf("short bundle control: %v", err)
	}
}

func TestParseHeaderAndMalformedMatches(t *testing.T) {
	if _, err := ParseHeader([]byte{4, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short header: %v", err)
	}
	if _, err := ParseHeader([]byte{4, 0, 0, 7, 0, 0, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("length 7: %v", err)
	}
	for name, m := range map[string][]byte{
		"short":          {0, 1},
		"standard match": {0, 0, 0, 8, 0, 0, 0, 0},
		"length 3":       {0, 1, 0, 3, 0, 0, 0, 0},
		"overrun":        {0, 1, 0, 16, 0, 0, 0, 0},
		"oxm overrun":    {0, 1, 0, 8, 0x80, 0, 0, 4},
		"bad oxm width":  {0, 1, 0, 8 + 3, 0x80, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0},
		"experimenter":   {0, 1, 0, 8, 0xff, 0xff, 0, 0},
	} {
		if _, _, err := ParseMatch(m); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// OVS writes NXM_OF_* / NXM_NX_* headers in the reg_move and reg_load
// actions it dumps, and an NXM_OF_IN_PORT set_field, even in OpenFlow 1.3.
// These bytes are OVS's encoding (ovs-ofctl -O OpenFlow13 parse-flow) of
//
//	move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],load:0x1->NXM_NX_TUN_ID[0..15],
//	move:NXM_OF_IN_PORT[]->NXM_NX_REG0[0..15],set_field:5->in_port,
//	move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],load:0xa->NXM_OF_ARP_TPA[0..7]
const ovsNXMActions = "ffff00180000232000060030000000000000040600000206" +
	"ffff0018000023200007000f000120080000000000000001" +
	"ffff0018000023200006001000000000000000020001000400190010000000020005000000000000" +
	"ffff00180000232000060030000000000001220600012406" +
	"ffff0018000023200007000700002204000000000000000a"

func TestDecodeNXMHeaders(t *testing.T) {
	b, err := hex.DecodeString(ovsNXMActions)
	if err != nil {
		t.Fatal(err)
	}
	as, err := ParseActions(b)
	if err != nil {
		t.Fatalf("%v: %s", err, flow.ActionsString(as))
	}
	want := []flow.Action{
		flow.Move{Src: flow.EthSrc, Dst: flow.EthDst, NBits: 48},
		flow.SetField{F: flow.TunnelID, Value: 1, Mask: 0xffff},
		flow.Move{Src: flow.InPort, Dst: flow.Reg0, NBits: 16},
		flow.SetField{F: flow.InPort, Value: 5},
		flow.Move{Src: flow.ARPSha, Dst: flow.ARPTha, NBits: 48},
		flow.SetField{F: flow.ARPTpa, Value: 0xa, Mask: 0xff},
	}
	if got := flow.ActionsString(as); got != flow.ActionsString(want) {
		t.Errorf("decoded\n %s\nwant\n %s", got, flow.ActionsString(want))
	}
	// Re-encoded (with OXM headers), they decode the same.
	for _, a := range as {
		if err := ValidateAction(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	again, err := ParseActions(must(AppendActions(nil, as)))
	if err != nil || flow.ActionsString(again) != flow.ActionsString(want) {
		t.Errorf("re-encoded: %v: %s", err, flow.ActionsString(again))
	}
	// Reserved ports survive the 16-bit in_port form.
	for _, p := range []uint32{1, 0xfeff, flow.PortLocal, flow.PortController} {
		sf := flow.SetField{F: flow.InPort, Value: uint64(p)}
		if err := ValidateAction(sf); err != nil {
			t.Errorf("set in_port %d: %v", p, err)
			continue
		}
		got, err := ParseActions(must(AppendActions(nil, []flow.Action{sf})))
		if err != nil || len(got) != 1 || got[0] != sf {
			t.Errorf("set in_port %#x: %v %v", p, got, err)
		}
	}
	if err := ValidateAction(flow.SetField{F: flow.InPort, Value: 0x10000}); err == nil {
		t.Error("set_field of a port beyond 16 bits to in_port accepted")
	}
}

// must unwraps an encoder's result in tests whose messages always fit.
func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestConjunctionBounds: a conjunction's clause k/n needs 1 <= k <= n and
// 2 <= n <= 64, both ways (OVS's own bounds).
func TestConjunctionBounds(t *testing.T) {
	for _, a := range []flow.Conjunction{{ID: 1, Clause: 0, NClauses: 2}, {ID: 1, Clause: 1, NClauses: 1},
		{ID: 1, Clause: 3, NClauses: 2}, {ID: 1, Clause: 1, NClauses: 65}} {
		if _, err := AppendActions(nil, []flow.Action{a}); !errors.Is(err, ErrUnencodable) {
			t.Errorf("%s encoded: %v", a, err)
		}
	}
	good := must(AppendActions(nil, []flow.Action{flow.Conjunction{ID: 7, Clause: 2, NClauses: 3}}))
	if len(good) != 16 {
		t.Fatalf("conjunction is %d bytes, want 16", len(good))
	}
	for _, c := range [][2]byte{{255, 3}, {3, 3}, {0, 1}, {0, 65}} {
		b := append([]byte{}, good...)
		b[10], b[11] = c[0], c[1]
		if as, err := ParseActions(b); err == nil {
			t.Errorf("clause %d/%d (0-based) decoded as %s", c[0], c[1], flow.ActionsString(as))
		}
	}
	if as, err := ParseActions(good); err != nil || flow.ActionsString(as) != "conjunction(7,2/3)" {
		t.Fatalf("decoded %s, %v", flow.ActionsString(as), err)
	}
}
