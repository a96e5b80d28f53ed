package portfwd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// The portable paths that other systems take in place of Linux's (the exact
// PROXY header read of Windows, the metered copy of every system but Linux)
// are plain functions, tested here on every system.

// TestReadHeaderExact checks that the header is read without a byte of what
// follows it, and that bad headers are refused.
func TestReadHeaderExact(t *testing.T) {
	var v2 bytes.Buffer
	src := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 4000}
	dst := &net.TCPAddr{IP: net.IPv4(10, 9, 9, 9), Port: 22}
	if err := writeProxyHeader(&v2, ProxyV2, src, dst); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in, header string
		bad              bool
	}{
		{name: "v1", in: "PROXY TCP4 10.1.2.3 10.9.9.9 4000 22\r\nSSH-2.0-x\r\n", header: "PROXY TCP4 10.1.2.3 10.9.9.9 4000 22\r\n"},
		{name: "v1 unknown", in: "PROXY UNKNOWN\r\nz", header: "PROXY UNKNOWN\r\n"},
		{name: "v2", in: v2.String() + "SSH-2.0-x\r\n", header: v2.String()},
		{name: "not a header", in: "SSH-2.0-x\r\n", bad: true},
		{name: "v1 too long", in: "PROXY " + strings.Repeat("1", 200) + "\r\n", bad: true},
		{name: "cut short", in: "PROXY TCP4 10.1", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := strings.NewReader(tc.in)
			got, err := readHeaderExact(r)
			if tc.bad {
				if !errors.Is(err, ErrProxyHeader) {
					t.Fatalf("readHeaderExact(%q) = %q, %v; want ErrProxyHeader", tc.in, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.header {
				t.Fatalf("readHeaderExact = %q, %v; want %q", got, err, tc.header)
			}
			rest, _ := io.ReadAll(r)
			if want := tc.in[len(tc.header):]; string(rest) != want {
				t.Fatalf("left %q after the header, want %q", rest, want)
			}
		})
	}
}

// TestMeteredCopy checks that the copy loop counts the bytes read and notes
// when each side last moved data.
func TestMeteredCopy(t *testing.T) {
	start := time.Now().Add(-time.Hour)
	var srcM, dstM sideMeter
	var dst bytes.Buffer
	payload := strings.Repeat("x", 100000)
	n, err := meteredCopy(&dst, strings.NewReader(payload), &srcM, &dstM, start, make([]byte, 4096))
	if err != nil || n != int64(len(payload)) || dst.String() != payload {
		t.Fatalf("copied %d bytes (%v), want %d", n, err, len(payload))
	}
	if got := srcM.read.Load(); got != int64(len(payload)) {
		t.Fatalf("source meter read %d bytes, want %d", got, len(payload))
	}
	now := time.Now()
	for name, m := range map[string]*sideMeter{"source": &srcM, "destination": &dstM} {
		if idle := m.idle(start, now); idle < 0 || idle > time.Minute {
			t.Fatalf("%s idle for %v right after the copy", name, idle)
		}
	}
	var untouched sideMeter
	if idle := untouched.idle(start, now); idle < time.Hour {
		t.Fatalf("a socket that moved nothing is idle for %v, want the pair's age", idle)
	}
	if _, err := meteredCopy(&dst, iotestErr{}, &srcM, &dstM, start, make([]byte, 16)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a failed read gave %v, want it returned", err)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
