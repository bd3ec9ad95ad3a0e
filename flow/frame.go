package flow

// Frames apps hand to the switch agent to send (app.Desired.Announce,
// packet-in replies).

// ARPRequest is a broadcast ARP request from sha/spa for tpa (spa == tpa:
// a gratuitous ARP; spa 0: a probe no neighbour cache learns from),
// untagged, padded to 60 bytes.
func ARPRequest(sha MAC, spa, tpa IPv4) []byte {
	b := make([]byte, 60)
	for i := 0; i < 6; i++ {
		b[i] = 0xff
		b[6+i] = byte(sha >> (40 - 8*i))
		b[22+i] = byte(sha >> (40 - 8*i))
	}
	b[12], b[13] = 0x08, 0x06
	copy(b[14:22], []byte{0, 1, 8, 0, 6, 4, 0, 1}) // Ethernet, IPv4, request
	for i := 0; i < 4; i++ {
		b[28+i] = byte(spa >> (24 - 8*i))
		b[38+i] = byte(tpa >> (24 - 8*i))
	}
	return b
}

// Tagged is Ethernet frame b with an 802.1Q tag for vlan inserted after
// the MACs (b itself when vlan is 0).
func Tagged(b []byte, vlan uint16) []byte {
	if vlan == 0 {
		return b
	}
	out := make([]byte, 0, len(b)+4)
	out = append(out, b[:12]...)
	out = append(out, 0x81, 0x00, byte(vlan>>8)&0x0f, byte(vlan))
	return append(out, b[12:]...)
}
