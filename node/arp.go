package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"syscall"
	"time"
)

// arpProbe resolves ip with an ARP probe (sender address 0.0.0.0, so no
// neighbour cache learns anything from it) sent from the bridge's own
// internal interface, which it brings up if needed. A Linux host answers
// a probe for its address to the probe's sender MAC, and the bridge
// (standalone, NORMAL) delivers that to its internal interface.
func arpProbe(ctx context.Context, bridge string, ip netip.Addr) (net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(bridge)
	if err != nil {
		return nil, fmt.Errorf("node: arp probe: %w", err)
	}
	if ifi.Flags&net.FlagUp == 0 {
		if out, err := exec.CommandContext(ctx, "ip", "link", "set", "dev", bridge, "up").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("node: arp probe: bringing %s up: %w: %s", bridge, err, out)
		}
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(syscall.ETH_P_ARP)))
	if err != nil {
		return nil, fmt.Errorf("node: arp probe: socket: %w", err)
	}
	defer syscall.Close(fd)
	sa := &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_ARP), Ifindex: ifi.Index}
	if err := syscall.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("node: arp probe: bind %s: %w", bridge, err)
	}
	tv := syscall.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("node: arp probe: %w", err)
	}
	tpa := ip.As4()
	req := arpFrame(ifi.HardwareAddr, tpa[:])
	buf := make([]byte, 1500)
	deadline := time.Now().Add(2 * time.Second)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if attempt%5 == 0 {
			if err := syscall.Sendto(fd, req, 0, sa); err != nil {
				return nil, fmt.Errorf("node: arp probe: send: %w", err)
			}
		}
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil || n < 42 {
			continue
		}
		f := buf[:n]
		if binary.BigEndian.Uint16(f[12:14]) != syscall.ETH_P_ARP || binary.BigEndian.Uint16(f[20:22]) != 2 || !bytes.Equal(f[28:32], tpa[:]) {
			continue
		}
		return net.HardwareAddr(append([]byte(nil), f[22:28]...)), nil
	}
	return nil, fmt.Errorf("node: arp probe: no answer for %s on %s", ip, bridge)
}

// arpFrame is an ARP probe from mac for tpa.
func arpFrame(mac net.HardwareAddr, tpa []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	b.Write(mac)
	b.Write([]byte{0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1})
	b.Write(mac)
	b.Write([]byte{0, 0, 0, 0})
	b.Write(make([]byte, 6))
	b.Write(tpa)
	for b.Len() < 60 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
