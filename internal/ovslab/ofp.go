package ovslab

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// maxHexArg bounds the message size passed as a hex argument to
// `ovs-ofctl ofp-print`: Linux caps one argument at 128 KiB. Larger messages
// go through a file and `ovs-ofctl ofp-parse`.
const maxHexArg = 60000

// decodeErrorMarkers are what ovs-ofctl prints (exit status 0!) when it
// cannot decode a message: "***decode error: OFPBAC_BAD_TYPE***",
// "(***truncated to 10 bytes from 80***)", "(***only uses 8 bytes out of
// 16***)", "***parse error***", "***N leftover bytes***", "OpenFlow packet
// too short (only 6 bytes)".
var decodeErrorMarkers = []string{"***", "OpenFlow packet too short"}

// OfpDecode decodes OpenFlow messages with Open vSwitch's own printer
// (`ovs-ofctl ofp-print HEX` for each message; `ovs-ofctl ofp-parse FILE`
// for large ones). msg may hold several messages back to back; their texts
// are joined. It returns an error when a length field is inconsistent, when
// ovs-ofctl exits non-zero, when its output carries a decode-error marker, or
// when it logs a warning or error on stderr (e.g. "bad action at offset 0").
// The returned text is what ovs-ofctl printed, even on error.
func OfpDecode(msg []byte) (string, error) {
	if len(msg) == 0 {
		return "", errors.New("ofp-print: empty message")
	}
	var texts []string
	for off := 0; off < len(msg); {
		if len(msg)-off < 8 {
			return strings.Join(texts, ""), fmt.Errorf("ofp-print: %d trailing bytes at offset %d are shorter than an OpenFlow header", len(msg)-off, off)
		}
		n := int(binary.BigEndian.Uint16(msg[off+2:]))
		if n < 8 || off+n > len(msg) {
			// Let ovs-ofctl describe the problem, then fail.
			text, _ := ofpPrintOne(msg[off:])
			texts = append(texts, text)
			return strings.Join(texts, ""), fmt.Errorf("ofp-print: message at offset %d has length field %d but %d bytes remain:\n%s", off, n, len(msg)-off, text)
		}
		text, err := ofpPrintOne(msg[off : off+n])
		texts = append(texts, text)
		if err != nil {
			return strings.Join(texts, ""), err
		}
		off += n
	}
	return strings.Join(texts, ""), nil
}

func ofpPrintOne(msg []byte) (string, error) {
	var cmd *exec.Cmd
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if len(msg) <= maxHexArg {
		cmd = exec.CommandContext(ctx, "ovs-ofctl", "ofp-print", hex.EncodeToString(msg))
	} else {
		dir, err := os.MkdirTemp("", "ovslab-ofp-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(dir)
		f := filepath.Join(dir, "msg.bin")
		if err := os.WriteFile(f, msg, 0o600); err != nil {
			return "", err
		}
		cmd = exec.CommandContext(ctx, "ovs-ofctl", "ofp-parse", f)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	text := stdout.String()
	if err != nil {
		return text, fmt.Errorf("ovs-ofctl %s: %v: %s%s", cmd.Args[1], err, text, stderr.String())
	}
	for _, m := range decodeErrorMarkers {
		if strings.Contains(text, m) {
			return text, fmt.Errorf("ovs-ofctl could not decode the message:\n%s%s", text, stderr.String())
		}
	}
	if s := stderr.String(); strings.Contains(s, "|WARN|") || strings.Contains(s, "|ERR|") {
		return text, fmt.Errorf("ovs-ofctl complained while decoding:\n%s%s", text, s)
	}
	return text, nil
}

// OfpPrint returns Open vSwitch's decoding of one or more OpenFlow messages
// (see OfpDecode), failing the test if OVS reports any decode problem. It
// needs the ovs-ofctl binary only (no running OVS), so it fails, not skips,
// when ovs-ofctl is missing.
func OfpPrint(t testing.TB, msg []byte) string {
	t.Helper()
	if _, err := exec.LookPath("ovs-ofctl"); err != nil {
		t.Fatalf("ovslab: ovs-ofctl not found; install the lab dependencies with scripts/deps.sh, or run `make test`")
	}
	text, err := OfpDecode(msg)
	if err != nil {
		t.Fatalf("ovslab: OpenFlow message % x\n%v", truncate(msg, 256), err)
	}
	return text
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
