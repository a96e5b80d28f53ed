package portfwd

import "time"

// maxSweep is the longest time between two inactivity scans.
const maxSweep = time.Second

// sweep enforces inactivity timeouts without touching the data path: it asks
// each pair how long its sockets have been idle (on Linux the kernel's
// TCP_INFO, elsewhere the pair's own copy loop, see idleTime) and closes pairs
// idle for longer than their timeout. It runs until Close, or until Shutdown
// has seen every connection end.
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
			if p.expired(ct, st, now) {
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

// expired reports whether either socket of p has moved no data for longer
// than its timeout (ct for the client, st for the server; zero: never). The
// pair's age bounds the idle time of a fresh socket.
func (p *pair) expired(ct, st time.Duration, now time.Time) bool {
	age := now.Sub(p.start)
	over := func(server bool, timeout time.Duration) bool {
		if timeout <= 0 {
			return false
		}
		idle, ok := p.idleTime(server, now)
		return ok && min(idle, age) > timeout
	}
	return over(false, ct) || over(true, st)
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
