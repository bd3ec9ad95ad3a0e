package hvlab

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-sdn/nimbus/internal/ovslab"
	"github.com/nimbus-sdn/nimbus/model/names"
)

// StartAgents runs the node agent (`bin node`) in every hypervisor of the
// lab, pointed at the controller's OpenFlow port and etcd endpoints, with
// extra flags appended, and waits until every br-int has its GRE port to
// each peer and the patch port of every physnet in physnets. The agents
// stop in t.Cleanup.
func (l *Lab) StartAgents(t testing.TB, bin string, ofPort int, endpoints string, physnets []string, extra ...string) {
	t.Helper()
	for _, hv := range l.hvs {
		args := []string{"node", "--chassis", hv.Name(), "--tunnel-ip", hv.TunnelIP(),
			"--datapath-type", "netdev", "--controllers", hv.ControllerTarget(ofPort), "--etcd-endpoints", endpoints}
		ovslab.StartProcess(t, bin, append(args, extra...), hv.Env())
	}
	ovslab.WaitFor(t, 30*time.Second, "GRE mesh and physnet patch ports from "+strconv.Itoa(len(l.hvs))+" node agents", func() bool {
		for _, hv := range l.hvs {
			out, err := hv.VsctlErr("list-ports", "br-int")
			if err != nil {
				return false
			}
			for _, peer := range l.hvs {
				if peer != hv && !strings.Contains(out, names.TunnelPortName(peer.Name())) {
					return false
				}
			}
			for _, pn := range physnets {
				if !strings.Contains(out, names.PhysPortName(pn)) {
					return false
				}
			}
		}
		return true
	})
}
