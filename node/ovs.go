package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"
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

// OVS is what the agent needs from Open vSwitch. VSCtl implements it with
// ovs-vsctl (which honours OVS_RUNDIR); tests use a fake.
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
	// IfaceIDs maps the bridge's interfaces that have an
	// external_ids:iface-id to it.
	IfaceIDs(ctx context.Context, bridge string) (map[string]string, error)
}

// VSCtl runs ovs-vsctl. go-openvswitch's ovs.VSwitchService runs the same
// tool but cannot set datapath_type or list interface options in one call,
// and is not in go.mod; the commands here are what it would run.
type VSCtl struct {
	// Path of ovs-vsctl (default "ovs-vsctl" from PATH).
	Path string
	// Timeout of each call (default 10s).
	Timeout time.Duration
}

func (v VSCtl) run(ctx context.Context, args ...string) (string, error) {
	path, to := v.Path, v.Timeout
	if path == "" {
		path = "ovs-vsctl"
	}
	if to == 0 {
		to = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{fmt.Sprintf("--timeout=%d", int(to.Seconds()))}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("node: ovs-vsctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

func (v VSCtl) EnsureBridge(ctx context.Context, b Bridge) error {
	args := []string{"--may-exist", "add-br", b.Name, "--", "set", "Bridge", b.Name, "fail_mode=secure", "protocols=OpenFlow13"}
	if b.DatapathType != "" {
		args = append(args, "datapath_type="+b.DatapathType)
	}
	if _, err := v.run(ctx, args...); err != nil {
		return err
	}
	if len(b.Controllers) == 0 {
		_, err := v.run(ctx, "del-controller", b.Name)
		return err
	}
	_, err := v.run(ctx, append([]string{"set-controller", b.Name}, b.Controllers...)...)
	return err
}

func (v VSCtl) EnsurePlainBridge(ctx context.Context, name, datapathType string) error {
	args := []string{"--may-exist", "add-br", name}
	if datapathType != "" {
		args = append(args, "--", "set", "Bridge", name, "datapath_type="+datapathType)
	}
	_, err := v.run(ctx, args...)
	return err
}

func (v VSCtl) DatapathID(ctx context.Context, bridge string) (string, error) {
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

func (v VSCtl) Tunnels(ctx context.Context, bridge string) (map[string]string, error) {
	ports, err := v.run(ctx, "list-ports", bridge)
	if err != nil {
		return nil, err
	}
	on := map[string]bool{}
	for _, p := range strings.Fields(ports) {
		on[p] = true
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

func (v VSCtl) SetGRE(ctx context.Context, bridge, port, remoteIP string) error {
	_, err := v.run(ctx, "--may-exist", "add-port", bridge, port, "--", "set", "Interface", port, "type=gre",
		"options:remote_ip="+remoteIP, "options:key=flow")
	return err
}

func (v VSCtl) SetPatch(ctx context.Context, bridge, port, peer string) error {
	_, err := v.run(ctx, "--may-exist", "add-port", bridge, port, "--", "set", "Interface", port, "type=patch", "options:peer="+peer)
	return err
}

func (v VSCtl) DeletePort(ctx context.Context, bridge, port string) error {
	_, err := v.run(ctx, "--if-exists", "del-port", bridge, port)
	return err
}

func (v VSCtl) IfaceIDs(ctx context.Context, bridge string) (map[string]string, error) {
	ports, err := v.run(ctx, "list-ports", bridge)
	if err != nil {
		return nil, err
	}
	on := map[string]bool{}
	for _, p := range strings.Fields(ports) {
		on[p] = true
	}
	rows, err := v.run(ctx, "--format=json", "--columns=name,external_ids", "find", "Interface", `external_ids:iface-id!=""`)
	if err != nil {
		return nil, err
	}
	return parseIfaceIDs(rows, on)
}

// parseIfaceIDs reads `ovs-vsctl --format=json --columns=name,external_ids
// find Interface` (external_ids is ["map", [[key, value], ...]]) and keeps
// the interfaces in on.
func parseIfaceIDs(js string, on map[string]bool) (map[string]string, error) {
	var tbl struct {
		Data [][]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(js), &tbl); err != nil {
		return nil, fmt.Errorf("node: reading interfaces: %w", err)
	}
	out := map[string]string{}
	for _, row := range tbl.Data {
		if len(row) != 2 {
			continue
		}
		var name string
		var ext []json.RawMessage
		if json.Unmarshal(row[0], &name) != nil || !on[name] || json.Unmarshal(row[1], &ext) != nil || len(ext) != 2 {
			continue
		}
		var pairs [][2]string
		if json.Unmarshal(ext[1], &pairs) != nil {
			continue
		}
		for _, kv := range pairs {
			if kv[0] == "iface-id" && kv[1] != "" {
				out[name] = kv[1]
			}
		}
	}
	return out, nil
}
