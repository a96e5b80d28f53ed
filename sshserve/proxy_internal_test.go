package sshserve

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
)

// addrConn is one end of a net.Pipe that reports a TCP peer address.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }
func (c addrConn) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7999} }

var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// FuzzProxyHeader feeds arbitrary bytes to the PROXY header reader of a
// connection from a trusted peer, under both policies that read headers. It
// must not panic or hang, and when it accepts the connection the SSH stream
// that follows must start exactly after the header: for v1 after the first
// CRLF, within 107 bytes; for v2 after 16 bytes and the length the header
// gives. Under gitfleet.ProxyRequired a header must have been consumed; the client
// address becomes the header's source or stays the peer's.
func FuzzProxyHeader(f *testing.F) {
	ssh := "SSH-2.0-OpenSSH_9.2\r\n"
	v2 := func(cmd, fam byte, body []byte) []byte {
		h := append(append([]byte{}, v2Signature...), 0x20|cmd, fam, 0, 0)
		binary.BigEndian.PutUint16(h[14:], uint16(len(body)))
		return append(append(h, body...), ssh...)
	}
	f.Add(byte(0), []byte("PROXY TCP4 192.0.2.7 127.0.0.1 40000 7999\r\n"+ssh))
	f.Add(byte(1), []byte("PROXY TCP6 2001:db8::7 ::1 40000 7999\r\n"+ssh))
	f.Add(byte(0), []byte("PROXY UNKNOWN\r\n"+ssh))
	f.Add(byte(1), []byte("PROXY TCP4 192.0.2.7 127.0.0.1 40000\r\n"+ssh))
	f.Add(byte(0), v2(1, 0x11, []byte{192, 0, 2, 7, 127, 0, 0, 1, 0x9c, 0x40, 0x1f, 0x3f}))
	f.Add(byte(1), v2(0, 0x00, nil))
	f.Add(byte(0), v2(1, 0x11, []byte{192, 0, 2, 7, 127, 0, 0, 1, 0x9c, 0x40, 0x1f, 0x3f, 4, 0, 1, 'x'}))
	f.Add(byte(1), v2Signature[:9])
	f.Add(byte(1), []byte(ssh))
	f.Add(byte(0), []byte("PROXY "+string(bytes.Repeat([]byte("9"), 200))+"\r\n"))
	f.Fuzz(func(t *testing.T, policy byte, data []byte) {
		s := &Server{
			ProxyProtocol:      gitfleet.ProxyRequired,
			ProxyTrusted:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			ProxyHeaderTimeout: time.Second,
		}
		if policy%2 == 1 {
			s.ProxyProtocol = gitfleet.ProxyOptional
		}
		client, server := net.Pipe()
		peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5000}
		nc := addrConn{Conn: server, remote: peer}
		c := &conn{srv: s, nc: nc, remote: peer, local: nc.LocalAddr(), log: slog.New(slog.DiscardHandler)}
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			client.Write(data)
			client.Close()
		}()
		defer func() {
			server.Close()
			<-wrote
		}()
		rc, err := c.acceptProxyHeader()
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(rc)
		if !bytes.HasSuffix(data, rest) {
			t.Fatalf("the stream after the header is not the end of the input: %q of %q", rest, data)
		}
		header := data[:len(data)-len(rest)]
		switch {
		case len(header) == 0:
			if s.ProxyProtocol == gitfleet.ProxyRequired {
				t.Fatalf("accepted without a header under gitfleet.ProxyRequired: %q", data)
			}
		case bytes.HasPrefix(header, []byte("PROXY ")):
			if len(header) > 107 || !bytes.HasSuffix(header, []byte("\r\n")) || bytes.Count(header, []byte("\r\n")) != 1 {
				t.Fatalf("v1 header %q does not end at the first CRLF within 107 bytes", header)
			}
		case bytes.HasPrefix(header, v2Signature):
			if len(header) < 16 || len(header) != 16+int(binary.BigEndian.Uint16(header[14:16])) {
				t.Fatalf("v2 header of %d bytes, its length field says otherwise: %q", len(header), header)
			}
		default:
			t.Fatalf("consumed %q, which is not a PROXY header", header)
		}
		if c.remote == nil {
			t.Fatal("no client address after the header")
		}
	})
}
