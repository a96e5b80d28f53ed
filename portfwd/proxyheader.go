package portfwd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pires/go-proxyproto"
)

// ErrProxyHeader is matched by errors for a missing or malformed PROXY
// protocol header on a bind with accept-proxy.
var ErrProxyHeader = errors.New("portfwd: bad PROXY protocol header")

// DefaultProxyHeaderTimeout bounds the wait for a PROXY header when
// Forwarder.ProxyHeaderTimeout is zero.
const DefaultProxyHeaderTimeout = 5 * time.Second

const (
	maxV1Header = 107
	v2Prefix    = 16 // signature, version/command, family, length
	maxV2Header = v2Prefix + 4096
)

var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// readProxyHeader reads exactly one PROXY header (v1 or v2) from c and
// nothing after it, so that the connection can still be spliced (see
// takeHeader). It returns the header and its length in bytes.
func readProxyHeader(c *net.TCPConn, timeout time.Duration) (*proxyproto.Header, int, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, 0, err
	}
	defer c.SetReadDeadline(time.Time{})
	got, err := takeHeader(c)
	if err != nil {
		return nil, 0, err
	}
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(got), len(got)+16))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrProxyHeader, err)
	}
	return h, len(got), nil
}

// readHeaderExact reads the PROXY header at the start of r without reading a
// byte past it: one byte at a time until headerSize knows the length (a v1
// header's end, a v2 header's 16-byte prefix), then the rest at once. It is
// the way on systems without a socket peek (Windows), a few dozen reads per
// header where peekHeader needs two.
func readHeaderExact(r io.Reader) ([]byte, error) {
	var got []byte
	one := make([]byte, 1)
	for {
		size, err := headerSize(got)
		if err != nil {
			return nil, err
		}
		if size > 0 {
			return got, nil
		}
		want := 1
		if len(got) >= v2Prefix && got[0] == '\r' {
			want = v2Prefix + (int(got[14])<<8 | int(got[15])) - len(got)
		}
		if want > 1 {
			rest := make([]byte, want)
			if _, err := io.ReadFull(r, rest); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrProxyHeader, err)
			}
			got = append(got, rest...)
			continue
		}
		if _, err := io.ReadFull(r, one); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: connection closed before the header ended", ErrProxyHeader)
			}
			return nil, fmt.Errorf("%w: %v", ErrProxyHeader, err)
		}
		got = append(got, one[0])
	}
}

// headerSize returns the length of the PROXY header at the start of b, or 0
// when b holds only the beginning of one.
func headerSize(b []byte) (int, error) {
	switch {
	case len(b) == 0:
		return 0, nil
	case b[0] == 'P':
		if !bytes.HasPrefix([]byte("PROXY "), b[:min(len(b), 6)]) {
			return 0, fmt.Errorf("%w: not a PROXY header", ErrProxyHeader)
		}
		if i := bytes.Index(b[:min(len(b), maxV1Header)], []byte("\r\n")); i >= 0 {
			return i + 2, nil
		}
		if len(b) >= maxV1Header {
			return 0, fmt.Errorf("%w: v1 header longer than %d bytes", ErrProxyHeader, maxV1Header)
		}
		return 0, nil
	case b[0] == '\r':
		if !bytes.HasPrefix(v2Signature, b[:min(len(b), len(v2Signature))]) {
			return 0, fmt.Errorf("%w: bad v2 signature", ErrProxyHeader)
		}
		if len(b) < v2Prefix {
			return 0, nil
		}
		size := v2Prefix + (int(b[14])<<8 | int(b[15]))
		if size > maxV2Header {
			return 0, fmt.Errorf("%w: v2 header longer than %d bytes", ErrProxyHeader, maxV2Header)
		}
		if len(b) >= size {
			return size, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%w: connection does not start with a PROXY header", ErrProxyHeader)
}

// writeProxyHeader sends a PROXY header of version v for a connection from
// src to dst; a nil src sends a LOCAL header (as health checks do).
func writeProxyHeader(w io.Writer, v ProxyVersion, src, dst net.Addr) error {
	var h *proxyproto.Header
	if src == nil {
		h = &proxyproto.Header{Version: byte(v), Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
		if v == ProxyV1 {
			// v1 has no LOCAL command: "PROXY UNKNOWN" is its equivalent.
			_, err := io.WriteString(w, "PROXY UNKNOWN\r\n")
			return err
		}
	} else {
		src, dst = sameFamily(src, dst)
		h = proxyproto.HeaderProxyFromAddrs(byte(v), src, dst)
	}
	_, err := h.WriteTo(w)
	return err
}

// sameFamily returns src and dst with IPv4-mapped IPv6 addresses turned into
// IPv4 when that makes both the same family, as a v1 header requires.
func sameFamily(src, dst net.Addr) (net.Addr, net.Addr) {
	s, ok1 := src.(*net.TCPAddr)
	d, ok2 := dst.(*net.TCPAddr)
	if !ok1 || !ok2 {
		return src, dst
	}
	s4, d4 := s.IP.To4(), d.IP.To4()
	switch {
	case s4 != nil && d4 != nil:
		return &net.TCPAddr{IP: s4, Port: s.Port}, &net.TCPAddr{IP: d4, Port: d.Port}
	case s4 != nil:
		return &net.TCPAddr{IP: s.IP.To16(), Port: s.Port}, d
	case d4 != nil:
		return s, &net.TCPAddr{IP: d.IP.To16(), Port: d.Port}
	}
	return src, dst
}
