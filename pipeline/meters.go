package pipeline

import "github.com/nimbus-sdn/nimbus/flow"

// MeterDef is a meter Nimbus installs on every switch that needs it.
// Ids come from Nimbus's meter range (MeterIDBase, 0x004e0000,
// the shared slice below MeterBase(1); a test checks they stay in it).
type MeterDef struct {
	ID      uint32
	Name    string
	RatePPS uint32
	Purpose string
}

// Controller protection: every flow that punts packets a tenant can send
// (or forge) goes through a per-switch packet-rate meter, so a flood costs
// the controller at most the meter's rate per switch.
var (
	MeterLLDP = &MeterDef{ID: 0x004e0001, Name: "lldp_punt", RatePPS: 1000,
		Purpose: "LLDP frames sent to the controller by the discovery punt (fabric switches)"}
	MeterDHCP = &MeterDef{ID: 0x004e0002, Name: "dhcp_punt", RatePPS: 500,
		Purpose: "DHCP requests sent to the controller's DHCP responder"}
	MeterLearning = &MeterDef{ID: 0x004e0003, Name: "learning_punt", RatePPS: 1000,
		Purpose: "L2 learning misses sent to the controller (plain switches; chassis have no learning fallback)"}
	MeterL3 = &MeterDef{ID: 0x004e0004, Name: "l3_punt", RatePPS: 100,
		Purpose: "routed packets with an expired TTL or no route, sent to the L3 router's handler for ICMP time exceeded / net unreachable"}
	MeterLBReject = &MeterDef{ID: 0x004e0005, Name: "lb_reject_punt", RatePPS: 500,
		Purpose: "new TCP connections to a VIP with no healthy member, sent to the lb app, which answers with a RST"}
	MeterNAT = &MeterDef{ID: 0x004e0006, Name: "nat_punt", RatePPS: 100,
		Purpose: "ARP from an external network's gateway (the nat handler learns its MAC) and floating IP egress before that MAC is known (the handler ARPs for it)"}
	MeterSNAT = &MeterDef{ID: 0x004e0007, Name: "snat_punt", RatePPS: 100,
		Purpose: "SNAT egress before this chassis knows the external next hop's MAC, and the next hop's answers to the chassis's ARP probes, sent to the snat app's resolver (never return traffic)"}
)

// Meters lists the declared meters.
var Meters = []*MeterDef{MeterLLDP, MeterDHCP, MeterLearning, MeterL3, MeterLBReject, MeterNAT, MeterSNAT}

// Meter is the OpenFlow meter: drop above RatePPS packets per second.
func (m *MeterDef) Meter() *flow.Meter {
	return &flow.Meter{ID: m.ID, Flags: flow.MeterPktps, Bands: []flow.Band{{Type: flow.BandDrop, Rate: m.RatePPS}}}
}

func declaredMeter(id uint32) bool {
	for _, m := range Meters {
		if m.ID == id {
			return true
		}
	}
	return false
}
