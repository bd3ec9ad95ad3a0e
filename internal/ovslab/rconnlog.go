package ovslab

import (
	"io"
	"os"
	"path/filepath"
	"strings"
)

// OVS writes a controller's is_connected and role into OVSDB only from its
// statistics timer (other_config:stats-update-interval, 5 s and no less), so
// OVSDB shows a new or lost connection up to 5 s late. ovs-vswitchd logs
// every rconn state change at once, though, e.g.
//
//	...|rconn|INFO|nb1a2b3c4d<->tcp:127.0.0.1:6653: connected
//
// The connection waits read those lines (from the moment the bridge was made)
// and fall back to OVSDB for targets the log says nothing about.

// vswitchdLogPath is ovs-vswitchd's log file (ovs-ctl's default).
func vswitchdLogPath() string {
	dir := os.Getenv("OVS_LOGDIR")
	if dir == "" {
		dir = "/var/log/openvswitch"
	}
	return filepath.Join(dir, "ovs-vswitchd.log")
}

func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// rconnLogStates returns, for each controller target of bridge that the log
// mentions after offset, whether its last logged rconn event says connected.
// A log that shrank (rotated) is read from the start.
func rconnLogStates(path string, offset int64, bridge string) map[string]bool {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() < offset {
		offset = 0
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil
	}
	return parseRconnLog(string(data), bridge)
}

func parseRconnLog(text, bridge string) map[string]bool {
	states := map[string]bool{}
	prefix := "|rconn|"
	for _, line := range strings.Split(text, "\n") {
		i := strings.Index(line, prefix)
		if i < 0 {
			continue
		}
		rest := line[i+len(prefix):] // "INFO|br<->target: event"
		_, msg, ok := strings.Cut(rest, "|")
		if !ok {
			continue
		}
		name, after, ok := strings.Cut(msg, "<->")
		if !ok || name != bridge {
			continue
		}
		target, event, ok := strings.Cut(after, ": ")
		if !ok {
			continue
		}
		switch {
		case event == "connected" || strings.HasPrefix(event, "connected "):
			states[target] = true
		case strings.HasPrefix(event, "connecting"),
			strings.HasPrefix(event, "connection "),
			strings.HasPrefix(event, "no response"),
			strings.HasPrefix(event, "disconnect"),
			strings.HasPrefix(event, "waiting "),
			strings.HasPrefix(event, "continuing to retry"):
			states[target] = false
		}
	}
	return states
}
