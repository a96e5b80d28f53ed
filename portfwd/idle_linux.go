package portfwd

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux a pair's copies are io.Copy between two *net.TCPConn, which splice,
// so nothing in the data path counts bytes or notes the time: the kernel's
// TCP_INFO tells both. pairMeter is empty here.
type pairMeter struct{}

// idleTime returns the time since the client (or the server) socket of p last
// sent or received data, from its TCP_INFO (tcpi_last_data_recv,
// tcpi_last_data_sent).
func (p *pair) idleTime(server bool, now time.Time) (time.Duration, bool) {
	if server {
		return sockIdle(p.serverRaw)
	}
	return sockIdle(p.clientRaw)
}

// liveBytes returns the bytes an open pair has moved from the client and from
// the server, from its sockets' TCP_INFO (for Stats). The client's count
// leaves out the PROXY header.
func (p *pair) liveBytes() (in, out int64) {
	return tcpBytes(p.clientRaw) - int64(p.headerLen), tcpBytes(p.serverRaw)
}

// sockIdle returns the time since the socket last sent or received data.
func sockIdle(raw syscall.RawConn) (time.Duration, bool) {
	var info *unix.TCPInfo
	var err error
	cerr := raw.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if cerr != nil || err != nil {
		return 0, false
	}
	ms := min(info.Last_data_recv, info.Last_data_sent)
	return time.Duration(ms) * time.Millisecond, true
}

// tcpBytes returns the bytes received on the socket so far.
func tcpBytes(raw syscall.RawConn) int64 {
	var info *unix.TCPInfo
	var err error
	cerr := raw.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if cerr != nil || err != nil {
		return 0
	}
	return int64(info.Bytes_received)
}
