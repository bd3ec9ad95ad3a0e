package switches

import "github.com/nimbus-sdn/nimbus/model"

// ChassisOwner names the registered chassis (model.Chassis in the current
// snapshot) whose bridge has datapath id dpid. ofproto.Server uses it to
// bind a chassis's datapath id to that chassis's certificate.
func (m *Manager) ChassisOwner(dpid uint64) (string, bool) {
	snap, _ := m.cfg.Model()
	if snap == nil {
		return "", false
	}
	return chassisOwner(snap, dpid)
}

func chassisOwner(snap *model.Snapshot, dpid uint64) (string, bool) {
	for _, c := range snap.Chassis() {
		if d, err := c.DatapathID(); err == nil && d == dpid {
			return c.Name, true
		}
	}
	return "", false
}
