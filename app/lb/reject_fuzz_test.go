package lb

import "testing"

// FuzzRST feeds hostile punted frames to the RST builder: it must never
// panic, and what it builds is one fixed-size frame (Ethernet, IPv4 and
// a TCP header without options, padded to 60), never something that grows with the
// input.
func FuzzRST(f *testing.F) {
	syn := []byte{
		0xfa, 0x16, 0x3e, 0, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 2, 0x08, 0x00, // Ethernet
		0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 11, 10, 0, 0, 100, // IPv4
		0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0, // TCP SYN
	}
	if RST(syn) == nil {
		f.Fatal("the seed SYN gets no RST")
	}
	f.Add(syn)
	f.Add([]byte{})
	f.Add(make([]byte, 14))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if rst := RST(frame); rst != nil && len(rst) != 60 { // 54 bytes of headers, padded to Ethernet's minimum
			t.Fatalf("RST of %d bytes", len(rst))
		}
	})
}
