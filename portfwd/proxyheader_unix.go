//go:build unix

package portfwd

import (
	"fmt"
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// takeHeader reads the PROXY header at the start of c and nothing after it:
// it peeks at the socket (MSG_PEEK) and consumes only the header's bytes,
// usually one peek and one read.
func takeHeader(c *net.TCPConn) ([]byte, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("%w: %v", ErrProxyHeader, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: connection closed before the header ended", ErrProxyHeader)
		}
		candidate := append(got, peek[:n]...)
		size, err := headerSize(candidate)
		if err != nil {
			return nil, err
		}
		take := n // the whole peek is header when the header goes on
		if size > 0 {
			take = size - len(got)
		}
		if _, err := io.ReadFull(c, peek[:take]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrProxyHeader, err)
		}
		got = append(got, peek[:take]...)
		if size > 0 {
			return got, nil
		}
		if len(got) >= maxV2Header {
			return nil, fmt.Errorf("%w: header too long", ErrProxyHeader)
		}
	}
}
