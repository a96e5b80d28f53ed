//go:build !linux

package portfwd

import (
	"errors"
	"net"
	"syscall"
)

// Outside Linux there are no event loops (they are built on epoll): every
// connection takes the goroutine way (handle), and a listener never gets the
// raw socket that acceptRaw would need. The declarations below keep the shared
// code (acceptLoop, Stats, start) the same on every system; the functions that
// a loop would call are never reached.

// loopsAvailable says whether a Forwarder forwards plain connections in event
// loops on this system.
const loopsAvailable = false

// errNoLoops is what the raw-socket functions would return if called.
var errNoLoops = errors.New("portfwd: no event loops on this system")

// evloop stands for Linux's event loop; a Forwarder has none here.
type evloop struct{}

// startLoops starts nothing: connections take the goroutine way.
func (f *Forwarder) startLoops() {}

// stopLoops stops nothing.
func (f *Forwarder) stopLoops() {}

func (l *evloop) liveBytes(add func(s *serverState, fe, be *counters, in, out int64)) {}

func acceptRaw(raw syscall.RawConn) (int, *net.TCPAddr, error) { return -1, nil, errNoLoops }

func (f *Forwarder) dispatch(fd int, src *net.TCPAddr, fe *frontend, bd Bind, feSlots, global slots) bool {
	return false
}

func fileTCPConn(fd int) (*net.TCPConn, error) { return nil, errNoLoops }

func sysClose(fd int) {}

func sysSetNoDelay(fd int) {}

// rawAddr stands for Linux's kernel socket address, which only a loop's
// connect uses.
type rawAddr struct{}

// rawAddrOf returns nil: without loops no connect needs a raw address.
func rawAddrOf(addr string) *rawAddr { return nil }
