package portfwd

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxSweep is the longest time between two inactivity scans.
const maxSweep = time.Second

// sweep enforces inactivity timeouts without touching the data path: it
// reads each socket's kernel TCP_INFO, whose tcpi_last_data_recv and
// tcpi_last_data_sent give the time since data last moved, and closes pairs
// idle for longer than their timeout. It runs until Close, or until Shutdown has seen every connection end.
func (f *Forwarder) sweep() {
	for {
		f.mu.Lock()
		pairs := make([]*pair, 0, len(f.pairs))
		for p := range f.pairs {
			pairs = append(pairs, p)
		}
		f.mu.Unlock()
		next := maxSweep
		now := time.Now()
		for _, p := range pairs {
			ct, st := p.timeouts()
			if t := minPositive(ct, st); t > 0 {
				next = min(next, sweepInterval(t))
			}
			if expired(p.clientRaw, ct, now.Sub(p.start)) || expired(p.serverRaw, st, now.Sub(p.start)) {
				f.logger().Info("connection closed: inactivity timeout", "client", p.client.RemoteAddr().String())
				p.close()
			}
		}
		f.sweepTick.Store(int64(next))
		t := time.NewTimer(next)
		select {
		case <-f.ctx.Done(): // Close, or Shutdown once connections ended
			t.Stop()
			return
		case <-f.sweepWake:
			t.Stop()
		case <-t.C:
		}
	}
}

// expired reports whether the socket has moved no data for longer than
// timeout (zero: never). age bounds the idle time for a fresh socket.
func expired(raw syscall.RawConn, timeout, age time.Duration) bool {
	if timeout <= 0 {
		return false
	}
	idle, ok := idleTime(raw)
	if !ok {
		return false
	}
	return min(idle, age) > timeout
}

// idleTime returns the time since the socket last sent or received data.
func idleTime(raw syscall.RawConn) (time.Duration, bool) {
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

// sweepInterval is how often a timeout of t is checked: a quarter of it,
// between 10ms and maxSweep.
func sweepInterval(t time.Duration) time.Duration {
	return min(max(t/4, 10*time.Millisecond), maxSweep)
}

func minPositive(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

// idleTimeouts are the inactivity timeouts of a connection pair, zero for
// none.
type idleTimeouts struct {
	clientIdle, serverIdle time.Duration
	clientFin, serverFin   time.Duration
}

func newIdleTimeouts(ft, bt Timeouts) idleTimeouts {
	var t idleTimeouts
	t.clientIdle, t.serverIdle = ft.Client, bt.Server
	if bt.Tunnel > 0 {
		t.clientIdle, t.serverIdle = bt.Tunnel, bt.Tunnel
	}
	t.clientFin = orDuration(ft.ClientFin, t.clientIdle)
	t.serverFin = orDuration(bt.ServerFin, t.serverIdle)
	return t
}

// current returns the timeouts that apply, given whether a direction ended.
func (t idleTimeouts) current(halfClosed bool) (client, server time.Duration) {
	if halfClosed {
		return t.clientFin, t.serverFin
	}
	return t.clientIdle, t.serverIdle
}
