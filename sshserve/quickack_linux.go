package sshserve

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// quickAckConn acknowledges every segment it reads at once (TCP_QUICKACK, which
// Linux clears again after a while, so it is set after each read).
//
// The OpenSSH client leaves Nagle's algorithm on for non-interactive sessions,
// and it sends several small messages back to back during the handshake (NEWKEYS
// and the service request, channel open and exec, env and exec): each second
// message waits until the first is acknowledged, and a receiver that delays its
// ACK stalls the client for 40 ms each time. With quick ACKs a connection to
// `git ls-remote` is about 80 ms faster on Linux loopback.
type quickAckConn struct {
	net.Conn
	rc syscall.RawConn
}

// withQuickAck wraps c when it is a TCP connection; otherwise it returns c.
func withQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{Conn: c, rc: rc}
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.rc.Control(setQuickAck)
	}
	return n, err
}

func setQuickAck(fd uintptr) {
	unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1)
}
