package testport

import (
	"net"
	"strconv"
	"testing"
)

// The port is free (a server can listen on it) and, with the default
// ranges, below the ephemeral range.
func TestFree(t *testing.T) {
	for range 20 {
		p, err := Free()
		if err != nil {
			t.Fatal(err)
		}
		if lo := ephemeralLow(); lo-1-low >= 1000 && (p < low || p >= lo) {
			t.Fatalf("port %d not in [%d, %d)", p, low, lo)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
	}
}
