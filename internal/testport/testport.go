// Package testport picks TCP ports for the servers a test starts. The
// kernel's own choice (listening on port 0) comes from the ephemeral
// range, which outgoing connections share: between the pick and the
// server's bind, a connection (a lab's curl, an etcd client) can take
// the port and the server fails with "address already in use". So the
// pick is below that range, where no outgoing connection goes.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// low is the lowest port picked: above the well-known services a test
// machine runs (ssh, OpenFlow 6653, Neutron 9696, etcd 2379/2380).
const low = 10000

// Free returns a TCP port on 127.0.0.1 that was free a moment ago, below
// the ephemeral range when there is room (else the kernel's pick).
func Free() (int, error) {
	high := ephemeralLow() - 1
	for i := 0; high-low >= 1000 && i < 200; i++ {
		p := low + rand.IntN(high-low+1)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testport: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow is the start of the kernel's ephemeral port range (32768,
// Linux's default, when unreadable).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return 32768
	}
	return n
}
