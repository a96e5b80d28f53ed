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
	"golang.org/x/sys/unix"
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
// nothing after it, so that the connection can still be spliced: it peeks at
// the socket and consumes only the header's bytes. It returns the header and
// its length in bytes.
func readProxyHeader(c *net.TCPConn, timeout time.Duration) (*proxyproto.Header, int, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, 0, err
	}
	defer c.SetReadDeadline(time.Time{})
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, 0, err
	}
	var got []byte
	peek := make([]byte, 512)
	for {
		var n int
		var perr error
		err := raw.Read(func(fd uintptr) bool {
			n, _, perr = unix.Recvfrom(int(fd), peek, unix.MSG_PEEK|unix.MSG_DONTWAIT)
			return perr != unix.EAGAIN
		})
		if err == nil {
			err = perr
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrProxyHeader, err)
		}
		if n == 0 {
			return nil, 0, fmt.Errorf("%w: connection closed before the header ended", ErrProxyHeader)
		}
		candidate := append(got, peek[:n]...)
		size, err := headerSize(candidate)
		if err != nil {
			return nil, 0, err
		}
		take := n // the whole peek is header when the header goes on
		if size > 0 {
			take = size - len(got)
		}
		if _, err := io.ReadFull(c, peek[:take]); err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrProxyHeader, err)
		}
		got = append(got, peek[:take]...)
		if size > 0 {
			break
		}
		if len(got) >= maxV2Header {
			return nil, 0, fmt.Errorf("%w: header too long", ErrProxyHeader)
		}
	}
	h, err := proxyproto.Read(bufio.NewReaderSize(bytes.NewReader(got), len(got)+16))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrProxyHeader, err)
	}
	return h, len(got), nil
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
