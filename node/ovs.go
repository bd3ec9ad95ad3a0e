package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/digitalocean/go-openvswitch/ovs"
)

// Bridge is the desired shape of br-int.
type Bridge struct {
	Name string
	// DatapathType is "netdev" for the userspace datapath, "" for the
	// system default.
	DatapathType string
	// Controllers are OVS controller targets ("tcp:10.0.0.1:6653").
	Controllers []string
}

// OVS is what the agent needs from Open vSwitch. Vswitch implements it with
// go-openvswitch (which runs ovs-vsctl, so OVS_RUNDIR is honoured); tests
// use a fake.
type OVS interface {
	// EnsureBridge creates the bridge if needed and sets datapath type,
	// fail_mode secure, OpenFlow 1.3 and the controllers.
	EnsureBridge(ctx context.Context, b Bridge) error
	// EnsurePlainBridge creates a bridge left to OVS (a physical network
	// bridge: standalone, NORMAL forwarding) if it does not exist.
	EnsurePlainBridge(ctx context.Context, name, datapathType string) error
	// DatapathID returns the bridge's datapath id (16 hex digits), "" if
	// OVS has not assigned it yet.
	DatapathID(ctx context.Context, bridge string) (string, error)
	// Tunnels returns the bridge's GRE ports with their remote_ip.
	Tunnels(ctx context.Context, bridge string) (map[string]string, error)
	// SetGRE creates or reconfigures a GRE port (key=flow).
	SetGRE(ctx context.Context, bridge, port, remoteIP string) error
	// SetPatch creates a patch port whose peer is peer.
	SetPatch(ctx context.Context, bridge, port, peer string) error
	// DeletePort removes a port if it exists.
	DeletePort(ctx context.Context, bridge, port string) error
	// Interfaces returns the bridge's interfaces (those of its ports; not
	// the bridge's own internal interface) by name.
	Interfaces(ctx context.Context, bridge string) (map[string]Iface, error)
}

// Iface is one interface of a bridge.
type Iface struct {
	// OFPort is its OpenFlow port number, 0 while OVS has not assigned
	// one (or failed to open the interface).
	OFPort uint32
	// IfaceID is its external_ids:iface-id (a Neutron port id), "" if none.
	IfaceID string
}

// Vswitch implements OVS with github.com/digitalocean/go-openvswitch
// (ovs.New: a client that runs ovs-vsctl with the process environment, so
// OVS_RUNDIR picks the Open vSwitch instance, as it does for the tools).
//
// The library covers adding and deleting bridges and ports, fail mode,
// protocols, a single controller, interface type and options (patch peer,
// GRE remote_ip and key) and listing ports. What it cannot do goes through
// a small ovs-vsctl fallback (run), used only for:
//   - creating a bridge with datapath_type (and, for br-int, fail_mode
//     secure) in one transaction: the library's AddBridge sets no column,
//     and a bridge created without datapath_type=netdev is first opened as
//     a kernel datapath, which fails where there is no openvswitch module,
//     and would forward in standalone mode until fail_mode is set;
//   - several controllers (SetController takes one target) or none
//     (del-controller);
//   - reading columns: datapath_id, GRE options and external_ids
//     (the library has no generic get or find).
//
// Adding a port and setting its interface type are two library calls, so
// ovs-vswitchd logs one "could not open network device" warning for the
// new GRE or patch port in between; the second call fixes it.
type Vswitch struct {
	// Path of ovs-vsctl for the fallback (default "ovs-vsctl" from PATH;
	// the library always runs "ovs-vsctl" from PATH).
	Path string
	// Timeout of each call (default 10s): ovs-vsctl --timeout for both,
	// and a hard deadline for the fallback.
	Timeout time.Duration
}

func (v Vswitch) timeout() time.Duration {
	if v.Timeout == 0 {
		return 10 * time.Second
	}
	return v.Timeout
}

// client is go-openvswitch's plain client (no sudo) with our timeout.
func (v Vswitch) client() *ovs.Client {
	return ovs.New(ovs.Timeout(max(1, int(v.timeout().Seconds()))))
}

// lib wraps an error of the library with the package name and the command.
func lib(err error, what string, args ...string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("node: ovs-vsctl %s %s: %w", what, strings.Join(args, " "), err)
}

// run is the ovs-vsctl fallback for what go-openvswitch cannot do (see
// Vswitch).
func (v Vswitch) run(ctx context.Context, args ...string) (string, error) {
	out, err := v.exec(ctx, "ovs-vsctl", append([]string{fmt.Sprintf("--timeout=%d", max(1, int(v.timeout().Seconds())))}, args...)...)
	return strings.TrimSpace(out), err
}

// createBridge adds a bridge with its datapath type (and fail mode, if
// set) in one transaction; without a datapath type the library does it.
func (v Vswitch) createBridge(ctx context.Context, name, datapathType string, fail ovs.FailMode) error {
	if datapathType == "" && fail == "" {
		return lib(v.client().VSwitch.AddBridge(name), "add-br", name)
	}
	cols := []string{}
	if datapathType != "" {
		cols = append(cols, "datapath_type="+datapathType)
	}
	if fail != "" {
		cols = append(cols, "fail_mode="+string(fail))
	}
	_, err := v.run(ctx, append([]string{"--may-exist", "add-br", name, "--", "set", "Bridge", name}, cols...)...)
	return err
}

func (v Vswitch) EnsureBridge(ctx context.Context, b Bridge) error {
	if err := v.createBridge(ctx, b.Name, b.DatapathType, ovs.FailModeSecure); err != nil {
		return err
	}
	c := v.client()
	// Repairs drift on an existing bridge.
	if err := c.VSwitch.SetFailMode(b.Name, ovs.FailModeSecure); err != nil {
		return lib(err, "set-fail-mode", b.Name, string(ovs.FailModeSecure))
	}
	if err := c.VSwitch.Set.Bridge(b.Name, ovs.BridgeOptions{Protocols: []string{ovs.ProtocolOpenFlow13}}); err != nil {
		return lib(err, "set bridge", b.Name, "protocols="+ovs.ProtocolOpenFlow13)
	}
	switch len(b.Controllers) {
	case 0:
		_, err := v.run(ctx, "del-controller", b.Name)
		return err
	case 1:
		return lib(c.VSwitch.SetController(b.Name, b.Controllers[0]), "set-controller", b.Name, b.Controllers[0])
	}
	_, err := v.run(ctx, append([]string{"set-controller", b.Name}, b.Controllers...)...)
	return err
}

func (v Vswitch) EnsurePlainBridge(ctx context.Context, name, datapathType string) error {
	return v.createBridge(ctx, name, datapathType, "")
}

func (v Vswitch) DatapathID(ctx context.Context, bridge string) (string, error) {
	out, err := v.run(ctx, "get", "Bridge", bridge, "datapath_id")
	if err != nil {
		return "", err
	}
	out = strings.Trim(out, "\"")
	if out == "[]" {
		out = ""
	}
	return out, nil
}

// ports lists a bridge's ports with the library.
func (v Vswitch) ports(bridge string) (map[string]bool, error) {
	ports, err := v.client().VSwitch.ListPorts(bridge)
	if err != nil {
		return nil, lib(err, "list-ports", bridge)
	}
	on := make(map[string]bool, len(ports))
	for _, p := range ports {
		on[strings.TrimSpace(p)] = true
	}
	return on, nil
}

func (v Vswitch) Tunnels(ctx context.Context, bridge string) (map[string]string, error) {
	on, err := v.ports(bridge)
	if err != nil {
		return nil, err
	}
	// One call for every GRE interface (all bridges), filtered to ours.
	rows, err := v.run(ctx, "--format=csv", "--data=bare", "--no-headings", "--columns=name,options", "find", "Interface", "type=gre")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, row := range strings.Split(rows, "\n") {
		name, opts, ok := strings.Cut(strings.TrimSpace(row), ",")
		if !ok || !on[name] {
			continue
		}
		out[name] = ""
		for _, kv := range strings.Fields(strings.Trim(opts, "\"")) {
			if ip, ok := strings.CutPrefix(kv, "remote_ip="); ok {
				out[name] = ip
			}
		}
	}
	return out, nil
}

// setPort adds a port (if missing) and sets its interface's type and
// options, both with the library.
func (v Vswitch) setPort(bridge, port string, o ovs.InterfaceOptions) error {
	c := v.client()
	if err := c.VSwitch.AddPort(bridge, port); err != nil {
		return lib(err, "add-port", bridge, port)
	}
	return lib(c.VSwitch.Set.Interface(port, o), "set interface", port)
}

func (v Vswitch) SetGRE(_ context.Context, bridge, port, remoteIP string) error {
	return v.setPort(bridge, port, ovs.InterfaceOptions{Type: ovs.InterfaceTypeGRE, RemoteIP: remoteIP, Key: "flow"})
}

func (v Vswitch) SetPatch(_ context.Context, bridge, port, peer string) error {
	return v.setPort(bridge, port, ovs.InterfaceOptions{Type: ovs.InterfaceTypePatch, Peer: peer})
}

func (v Vswitch) DeletePort(_ context.Context, bridge, port string) error {
	return lib(v.client().VSwitch.DeletePort(bridge, port), "del-port", bridge, port)
}

func (v Vswitch) Interfaces(ctx context.Context, bridge string) (map[string]Iface, error) {
	on, err := v.ports(bridge)
	if err != nil {
		return nil, err
	}
	// One call for every interface (all bridges), filtered to ours.
	rows, err := v.run(ctx, "--format=json", "--columns=name,ofport,external_ids", "list", "Interface")
	if err != nil {
		return nil, err
	}
	return parseInterfaces(rows, on)
}

// parseInterfaces reads `ovs-vsctl --format=json
// --columns=name,ofport,external_ids list Interface` (ofport is a number,
// or ["set", []] before OVS assigns one; external_ids is ["map", [[key,
// value], ...]]) and keeps the interfaces in on.
func parseInterfaces(js string, on map[string]bool) (map[string]Iface, error) {
	var tbl struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(js), &tbl); err != nil {
		return nil, fmt.Errorf("node: reading interfaces: %w", err)
	}
	out := map[string]Iface{}
	for _, row := range tbl.Data {
		if len(row) != 3 {
			continue
		}
		var name string
		if json.Unmarshal(row[0], &name) != nil || !on[name] {
			continue
		}
		var it Iface
		var ofport int64
		if json.Unmarshal(row[1], &ofport) == nil && ofport > 0 && ofport < 0xffffff00 {
			it.OFPort = uint32(ofport)
		}
		var ext []json.RawMessage
		var pairs [][2]string
		if json.Unmarshal(row[2], &ext) == nil && len(ext) == 2 && json.Unmarshal(ext[1], &pairs) == nil {
			for _, kv := range pairs {
				if kv[0] == "iface-id" {
					it.IfaceID = kv[1]
				}
			}
		}
		out[name] = it
	}
	return out, nil
}
