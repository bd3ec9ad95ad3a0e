package pipeline

import (
	"hash/fnv"

	"github.com/nimbus-sdn/nimbus/flow"
)

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
	MeterLearning = &MeterDef{ID: 0x004e0003, Name: "learning_punt", RatePPS: 1000,
		Purpose: "L2 learning misses sent to the controller (plain switches; chassis have no learning fallback)"}
	MeterNAT = &MeterDef{ID: 0x004e0006, Name: "nat_punt", RatePPS: 100,
		Purpose: "ARP from an external network's gateway (the nat handler learns its MAC) and floating IP egress before that MAC is known (the handler ARPs for it)"}
	MeterSNAT = &MeterDef{ID: 0x004e0007, Name: "snat_punt", RatePPS: 100,
		Purpose: "SNAT egress before this chassis knows the external next hop's MAC, and the next hop's answers to the chassis's ARP probes, sent to the snat app's resolver (never return traffic)"}
)

// Meters lists the declared meters.
var Meters = []*MeterDef{MeterLLDP, MeterLearning, MeterNAT, MeterSNAT}

// ProjectMeter is a punt meter a switch holds once per project that
// needs it, in its app's own meter slice: one tenant's flood is dropped
// by its own meter and cannot use up another's.
type ProjectMeter struct {
	App     AppID
	Name    string
	RatePPS uint32
	Purpose string
}

// ID is project's meter: MeterBase(App) + 1 + (FNV-1a of the project id
// mod MetersPerApp-1). Two projects share one only when they collide (a
// chance of 1 in 65,535 per pair); the meter is then theirs together.
func (m *ProjectMeter) ID(project string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(project))
	return MeterBase(m.App) + 1 + h.Sum32()%(MetersPerApp-1)
}

// Meter is project's OpenFlow meter: drop above RatePPS packets per
// second.
func (m *ProjectMeter) Meter(project string) *flow.Meter { return dropAbove(m.ID(project), m.RatePPS) }

// Add returns ms with project's meter appended, unless ms holds it
// already (an app's desired meters, each once).
func (m *ProjectMeter) Add(ms []*flow.Meter, project string) []*flow.Meter {
	id := m.ID(project)
	for _, x := range ms {
		if x.ID == id {
			return ms
		}
	}
	return append(ms, m.Meter(project))
}

// MeterLBReject is the lb app's RST punt, per project (the VIP's).
var MeterLBReject = &ProjectMeter{App: AppLB, Name: "lb_reject_punt", RatePPS: 100,
	Purpose: "new TCP connections to a VIP with no healthy member (from its network, a router or its floating IP), sent to the lb app, which answers with a RST; one meter per project of the VIPs, in lb's meter slice"}

// MeterDHCP is the isolation app's DHCP punt, per project (the VM
// port's).
var MeterDHCP = &ProjectMeter{App: AppIsolation, Name: "dhcp_punt", RatePPS: 100,
	Purpose: "DHCP requests sent to the controller's DHCP responder (one flow per VM port on its switch); one meter per project of the ports, in isolation's meter slice, so one tenant's DHCP flood cannot keep another's VMs from their addresses"}

// MeterL3 is the L3 router's punt of routed packets with an expired TTL
// or no route, per project (the router's).
var MeterL3 = &ProjectMeter{App: AppL3Router, Name: "l3_punt", RatePPS: 100,
	Purpose: "routed packets with an expired TTL or no route, sent to the L3 router's handler for ICMP time exceeded / net unreachable; one meter per project of the routers, in l3router's meter slice, so one tenant's traceroute or scan flood cannot use up another's ICMP errors (0x004e0004, the one meter per switch before, is retired)"}

// ProjectMeters lists the per-project meters.
var ProjectMeters = []*ProjectMeter{MeterDHCP, MeterL3, MeterLBReject}

// projectMeter reports whether id is in app's meter slice and app has
// per-project meters.
func projectMeter(id uint32, app AppID) bool {
	for _, m := range ProjectMeters {
		if m.App == app && app != AppPipeline && id > MeterBase(app) && id < MeterBase(app)+MetersPerApp {
			return true
		}
	}
	return false
}

// Meter is the OpenFlow meter: drop above RatePPS packets per second.
func (m *MeterDef) Meter() *flow.Meter { return dropAbove(m.ID, m.RatePPS) }

// dropAbove is meter id dropping above pps packets per second.
func dropAbove(id, pps uint32) *flow.Meter {
	return &flow.Meter{ID: id, Flags: flow.MeterPktps, Bands: []flow.Band{{Type: flow.BandDrop, Rate: pps}}}
}

func declaredMeter(id uint32) bool {
	for _, m := range Meters {
		if m.ID == id {
			return true
		}
	}
	return false
}
