package northbound

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nimbus-sdn/nimbus/model"
	"github.com/nimbus-sdn/nimbus/pipeline"
	"github.com/nimbus-sdn/nimbus/store"
)

// Data-plane status (issue 11): a VM port, a router interface port, a
// router and a floating IP are ACTIVE once the flows concerning them are
// on the switches, DOWN otherwise. Each switch's master publishes, after
// a reconcile pass that applied the switch's complete desired state,
// which objects' flows the switch holds and which Neutron ports are bound
// on it with their flows in (store.SwitchStatus, under the replica's
// lease; switches/status.go). The API reads those records (at most once
// per Config.StatusCacheTTL, 250 ms by default) and derives:
//
//	VM port (any device_owner not "network:" or "neutron:")  ACTIVE when its home switch
//	                                                        (where its interface is) holds its flows
//	router interface port  ACTIVE when some switch holds flows for it and none refused one
//	router                 ACTIVE when it has interfaces and every one is ACTIVE
//	floating IP            ACTIVE when associated and some switch holds flows for it
//	                       (cookie object pipeline.ObjectID(fip id)) and none refused one
//	LBaaS v1 VIP           ACTIVE when admin up and some switch holds flows for it (app/lb's,
//	                       where it has clients) and none refused one
//
// An admin_state_up false port, router or VIP is DOWN. Other ports (router
// gateway, load balancer, DHCP) keep the status the API gives them.

type dataPlane struct {
	home    map[string]bool // ports whose home switch holds their flows
	objects map[uint64]bool // object ids with flows installed somewhere
	refused map[uint64]bool // object ids with a flow refused somewhere
}

// dataPlaneCache keeps the last dataPlane read for Config.StatusCacheTTL:
// reading it costs every switch's record, and a list of ports or a burst
// of requests needs it once, not once each. One request reads at a time;
// the others wait for its result.
type dataPlaneCache struct {
	mu sync.Mutex
	at time.Time
	dp *dataPlane
}

// dataPlane is every switch's status, read at most once per request and
// at most once per StatusCacheTTL across requests.
func (h *handler) dataPlane(rc *reqCtx) (*dataPlane, error) {
	if rc.dp != nil {
		return rc.dp, nil
	}
	ttl := h.cfg.StatusCacheTTL
	if ttl > 0 {
		c := &h.dp
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.dp != nil && time.Since(c.at) < ttl {
			rc.dp = c.dp
			return c.dp, nil
		}
	}
	dp, err := h.readDataPlane(rc)
	if err != nil {
		return nil, err
	}
	if ttl > 0 {
		h.dp.dp, h.dp.at = dp, time.Now()
	}
	rc.dp = dp
	return dp, nil
}

func (h *handler) readDataPlane(rc *reqCtx) (*dataPlane, error) {
	kvs, _, err := h.listRaw(rc, store.SwitchStatusPrefix)
	if err != nil {
		return nil, err
	}
	dp := &dataPlane{home: map[string]bool{}, objects: map[uint64]bool{}, refused: map[uint64]bool{}}
	for _, kv := range kvs {
		var st store.SwitchStatus
		if err := json.Unmarshal([]byte(kv.val), &st); err != nil {
			h.log.Warn("northbound: unreadable switch status", "key", kv.key, "err", err)
			continue
		}
		for _, p := range st.Ports {
			dp.home[p] = true
		}
		for _, o := range st.Objects {
			if n, err := strconv.ParseUint(o, 16, 64); err == nil {
				dp.objects[n] = true
			}
		}
		for _, o := range st.Refused {
			if n, err := strconv.ParseUint(o, 16, 64); err == nil {
				dp.refused[n] = true
			}
		}
	}
	return dp, nil
}

// installed: some switch holds flows of object id, and none refused one.
func (dp *dataPlane) installed(id string) bool {
	o := pipeline.ObjectID(id)
	return dp.objects[o] && !dp.refused[o]
}

func isRouterInterface(owner string) bool {
	return owner == ownerRouterIface || owner == "network:router_interface_distributed"
}

// dataPlanePort reports whether a port's status comes from the data
// plane (VM and router interface ports).
func dataPlanePort(owner string) bool {
	return isRouterInterface(owner) || !(strings.HasPrefix(owner, "network:") || strings.HasPrefix(owner, "neutron:"))
}

func upDown(b bool) string {
	if b {
		return "ACTIVE"
	}
	return "DOWN"
}

// portStatus is a port's status; ok is false when the data plane is
// unreadable (the stored status is shown then).
func (h *handler) portStatus(rc *reqCtx, p *model.Port) (string, bool) {
	if !dataPlanePort(p.DeviceOwner) {
		return "", false
	}
	dp, err := h.dataPlane(rc)
	if err != nil {
		return "", false
	}
	if isRouterInterface(p.DeviceOwner) {
		return upDown(p.AdminStateUp && dp.installed(p.ID)), true
	}
	return upDown(p.AdminStateUp && dp.home[p.ID]), true
}

// routerStatus: ACTIVE when the router has interfaces and each one's
// flows are in.
func (h *handler) routerStatus(rc *reqCtx, rt *model.Router) string {
	dp, err := h.dataPlane(rc)
	if err != nil || !rt.AdminStateUp || len(rt.Interfaces) == 0 {
		return "DOWN"
	}
	for _, id := range rt.Interfaces {
		if !dp.installed(id) {
			return "DOWN"
		}
	}
	return "ACTIVE"
}

// fipStatus: ACTIVE when associated and its flows are in.
func (h *handler) fipStatus(rc *reqCtx, f *model.FloatingIP) string {
	if f.PortID == "" {
		return "DOWN"
	}
	dp, err := h.dataPlane(rc)
	if err != nil {
		return "DOWN"
	}
	return upDown(dp.installed(f.ID))
}

// vipStatus: ACTIVE when the VIP is admin up and some switch holds its
// flows (a chassis with a client of it, or its floating IP's home) with
// none refused; DOWN otherwise (app/lb gives a VIP of an admin-down pool
// no flows).
func (h *handler) vipStatus(rc *reqCtx, v *model.LBVIP) string {
	if !v.AdminStateUp {
		return "DOWN"
	}
	dp, err := h.dataPlane(rc)
	if err != nil {
		return "DOWN"
	}
	return upDown(dp.installed(v.ID))
}
