package portfwd

import "net"

// takeHeader reads the PROXY header at the start of c and nothing after it.
// Windows sockets offer no non-blocking peek through the net package, so the
// header is read exactly (readHeaderExact).
func takeHeader(c *net.TCPConn) ([]byte, error) {
	return readHeaderExact(c)
}
