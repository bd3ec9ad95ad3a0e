package pipeline

import (
	"testing"

	"github.com/nimbus-sdn/nimbus/flow"
)

// ct() may recirculate back into its own table only where the table
// says so (lb); anywhere else it is still refused, and a goto or
// resubmit to the own table is refused even in lb.
func TestRecirculatesIntoOwnTable(t *testing.T) {
	ct := func(tb *Table, app AppID) *flow.Flow {
		return &flow.Flow{Table: tb.ID(), Priority: PriorityNormal, Cookie: Cookie(app, 1),
			Match:   flow.M().EthType(flow.EthTypeIPv4),
			Actions: []flow.Action{flow.CT{Zone: 1, Table: tb.ID(), NAT: &flow.NAT{}}}}
	}
	if err := Check(ct(LB, AppLB)); err != nil {
		t.Errorf("lb recirculating into lb: %v", err)
	}
	if err := Check(ct(DNAT, AppNAT)); err == nil {
		t.Errorf("dnat recirculating into dnat accepted")
	}
	res := &flow.Flow{Table: LB.ID(), Priority: PriorityNormal, Cookie: Cookie(AppLB, 1),
		Actions: []flow.Action{flow.Resubmit{InPort: flow.PortInPort, Table: LB.ID()}}}
	if err := Check(res); err == nil {
		t.Errorf("lb resubmitting into lb accepted")
	}
}
