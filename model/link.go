package model

import (
	"fmt"
	"strconv"
	"strings"
)

// Link is a fabric link between two switches, discovered by LLDP. It is
// directional: the LLDP frame sent out of Src arrived at Dst. The replica
// that masters the receiving switch writes it, keyed by the receiving
// end (a port has at most one neighbour), and deletes it when the frames
// stop or the port goes down.
type Link struct {
	SrcDPID uint64 `json:"src_dpid"`
	SrcPort uint32 `json:"src_port"`
	DstDPID uint64 `json:"dst_dpid"`
	DstPort uint32 `json:"dst_port"`
}

// LinkKey is the record id of the link arriving at dpid's port.
func LinkKey(dpid uint64, port uint32) string { return fmt.Sprintf("%016x-%d", dpid, port) }

// Key is the receiving end.
func (l *Link) Key() string { return LinkKey(l.DstDPID, l.DstPort) }

// Kind is KindLink.
func (*Link) Kind() Kind { return KindLink }

// DatapathID parses the chassis's datapath id as OVS prints it (16 hex
// digits, optionally 0x-prefixed or colon-separated).
func (c *Chassis) DatapathID() (uint64, error) {
	return ParseDPID(c.DPID)
}

// ParseDPID reads a datapath id as OVS prints it.
func ParseDPID(s string) (uint64, error) {
	t := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "0x")
	t = strings.ReplaceAll(t, ":", "")
	v, err := strconv.ParseUint(t, 16, 64)
	if err != nil || t == "" {
		return 0, fmt.Errorf("model: bad datapath id %q", s)
	}
	return v, nil
}
