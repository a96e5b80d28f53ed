//go:build !linux

package portfwd

import (
	"sync"
	"time"
)

// Outside Linux a pair's copies go through a buffer (io.Copy between two
// *net.TCPConn does the same there: there is no splice), and the copy loop
// notes what Linux reads from the kernel's TCP_INFO: the bytes moved so far and
// when each socket last moved data (meteredCopy).

// copyBuf is the copy loop's buffer size.
const copyBuf = 32 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBuf); return &b }}

// pairMeter is what a pair's copy loops note for Stats and the inactivity
// timeouts.
type pairMeter struct {
	client, server sideMeter
}

// forward copies one direction of p until its source ends: the client to the
// server when toServer is set, else the server to the client. It returns the
// bytes copied; the end of the source is no error.
func (p *pair) forward(toServer bool) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	if toServer {
		return meteredCopy(p.server, p.client, &p.meter.client, &p.meter.server, p.start, *bp)
	}
	return meteredCopy(p.client, p.server, &p.meter.server, &p.meter.client, p.start, *bp)
}

// idleTime returns the time since the client (or the server) socket of p last
// sent or received data, as its copy loops noted it.
func (p *pair) idleTime(server bool, now time.Time) (time.Duration, bool) {
	if server {
		return p.meter.server.idle(p.start, now), true
	}
	return p.meter.client.idle(p.start, now), true
}

// liveBytes returns the bytes an open pair has moved from the client and from
// the server (for Stats).
func (p *pair) liveBytes() (in, out int64) {
	return p.meter.client.read.Load(), p.meter.server.read.Load()
}
