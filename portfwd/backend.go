package portfwd

import (
	"container/list"
	"context"
	"errors"
	"hash/fnv"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Errors for a connection that gets no server.
var (
	// ErrNoServer means no server of the backend is up.
	ErrNoServer = errors.New("portfwd: no server available")
	// ErrQueueFull means every server is at maxconn and the queue is at its
	// maxqueue bound.
	ErrQueueFull = errors.New("portfwd: backend queue full")
	// ErrQueueTimeout means the connection waited "timeout queue" for a slot.
	ErrQueueTimeout = errors.New("portfwd: timed out in backend queue")
)

// serverState is the live state of one server. It outlives reloads that keep
// the server's backend, name and address.
type serverState struct {
	cfg *Server  // guarded by backend.mu; replaced on reload
	sa  *rawAddr // cfg.Addr when it is a literal IP:port; guarded by backend.mu

	// guarded by backend.mu
	up         bool
	lastChange time.Time
	cur        int
	swrr       int // smooth weighted round-robin credit
	queued     int // connections waiting for this server in particular

	total, connErrs, checkFails atomic.Int64
	bytesIn, bytesOut           atomic.Int64
}

// backend is the live state of one backend.
type backend struct {
	name string

	mu        sync.Mutex
	cfg       *Backend
	servers   []*serverState
	queue     list.List // of *waiter, for any server or (srv set) one server
	queueMax  int       // bound of the waiters for any server; -1: unbounded
	anyQueued int       // waiters for any server
	hostNames bool      // a server's address is a host name, not an IP
	rotate    int

	*counters // shared with the same-named backend before and after reloads
}

// counters are the statistics of a frontend or backend. They belong to the
// name, so that reloads keep them and connections opened before a reload
// are still counted.
type counters struct {
	cur, total, connErrs atomic.Int64
	bytesIn, bytesOut    atomic.Int64
}

type waiter struct {
	ready chan struct{}
	elem  *list.Element
	srv   *serverState // the server it waits for; nil: any server
}

// newBackend returns the live state for cfg. The same-named backend of the
// running configuration (old) is reconfigured in place, so that its servers'
// slots, health and queue carry over under the one lock that guards them.
func newBackend(cfg *Backend, old *backend, now time.Time) *backend {
	if old != nil {
		old.mu.Lock()
		defer old.mu.Unlock()
		old.setConfig(cfg, now)
		old.wakeLocked() // limits may have changed: let the queue look again
		return old
	}
	b := &backend{name: cfg.Name, counters: &counters{}}
	b.setConfig(cfg, now)
	return b
}

// setConfig installs cfg, keeping the state of servers whose name and address
// are unchanged. Servers left out keep serving their open connections.
func (b *backend) setConfig(cfg *Backend, now time.Time) {
	prev := b.servers
	b.cfg = cfg
	b.servers = nil
	b.queueMax = 0
	b.hostNames = false
	for _, sc := range cfg.Servers {
		var st *serverState
		for _, o := range prev {
			if o.cfg.Name == sc.Name && o.cfg.Addr == sc.Addr {
				st = o
			}
		}
		if st == nil {
			st = &serverState{up: true, lastChange: now}
		}
		st.cfg = sc
		st.sa = rawAddrOf(sc.Addr)
		b.hostNames = b.hostNames || st.sa == nil
		if !sc.Check {
			st.up = true
		}
		b.servers = append(b.servers, st)
		if sc.MaxQueue == 0 || b.queueMax < 0 {
			b.queueMax = -1
		} else {
			b.queueMax += sc.MaxQueue
		}
	}
}

// acquire takes a connection slot on a server chosen by the balancing
// algorithm for a client at ip, preferring servers not in tried. When every
// server that is up is at maxconn, it waits in the queue.
func (b *backend) acquire(ctx context.Context, ip net.IP, tried map[*serverState]bool) (*serverState, error) {
	var timer <-chan time.Time
	for {
		b.mu.Lock()
		s, full, pinned := b.pickLocked(ip, tried)
		if s != nil {
			s.cur++
			b.mu.Unlock()
			return s, nil
		}
		if !full {
			b.mu.Unlock()
			return nil, ErrNoServer
		}
		if pinned != nil && pinned.cfg.MaxQueue > 0 && pinned.queued >= pinned.cfg.MaxQueue ||
			pinned == nil && b.queueMax >= 0 && b.anyQueued >= b.queueMax {
			b.mu.Unlock()
			return nil, ErrQueueFull
		}
		if timer == nil {
			if d := b.cfg.queueTimeout(); d > 0 {
				t := time.NewTimer(d)
				defer t.Stop()
				timer = t.C
			}
		}
		w := &waiter{ready: make(chan struct{}), srv: pinned}
		b.enqueueLocked(w)
		b.mu.Unlock()
		select {
		case <-w.ready:
		case <-timer:
			b.leave(w)
			return nil, ErrQueueTimeout
		case <-ctx.Done():
			b.leave(w)
			return nil, ctx.Err()
		}
	}
}

// acquired is a server slot taken by tryAcquire, with the configuration read
// under the backend's lock.
type acquired struct {
	s    *serverState
	addr *rawAddr
	cfg  *Server
	bcfg *Backend
}

// tryAcquire takes a slot on a server chosen by the balancing algorithm when
// one is free and no connection is queued. It reports false when the
// connection must wait, has no server, or the backend names a server by host
// name.
func (b *backend) tryAcquire(ip net.IP) (acquired, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queue.Len() > 0 || b.hostNames {
		return acquired{}, false
	}
	s, _, _ := b.pickLocked(ip, nil)
	if s == nil {
		return acquired{}, false
	}
	s.cur++
	return acquired{s, s.sa, s.cfg, b.cfg}, true
}

// enqueueLocked puts w at the back of the queue.
func (b *backend) enqueueLocked(w *waiter) {
	w.elem = b.queue.PushBack(w)
	if w.srv != nil {
		w.srv.queued++
	} else {
		b.anyQueued++
	}
}

// dequeueLocked takes w out of the queue.
func (b *backend) dequeueLocked(w *waiter) {
	b.queue.Remove(w.elem)
	if w.srv != nil {
		w.srv.queued--
	} else {
		b.anyQueued--
	}
}

// leave removes w from the queue; if w had been woken already, the wake-up
// passes to the next waiter that the freed slot can serve.
func (b *backend) leave(w *waiter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready:
		b.wakeForLocked(w.srv)
	default:
		b.dequeueLocked(w)
	}
}

// release gives back the slot s was acquired with.
func (b *backend) release(s *serverState) {
	b.mu.Lock()
	s.cur--
	b.wakeForLocked(s)
	b.mu.Unlock()
}

// wakeForLocked wakes the first queued connection that a free slot on s can
// serve: one waiting for any server, or for s itself. A nil s (a slot of
// unknown server) wakes the first waiter.
func (b *backend) wakeForLocked(s *serverState) {
	for e := b.queue.Front(); e != nil; e = e.Next() {
		w := e.Value.(*waiter)
		if s == nil || w.srv == nil || w.srv == s {
			b.dequeueLocked(w)
			close(w.ready)
			return
		}
	}
}

// wakeLocked wakes every queued connection, to look again after a change of
// health or configuration.
func (b *backend) wakeLocked() {
	for b.queue.Len() > 0 {
		w := b.queue.Front().Value.(*waiter)
		b.dequeueLocked(w)
		close(w.ready)
	}
}

// pickLocked chooses a server. It returns nil and full=true when servers are
// up but all at maxconn, nil and full=false when none is up. With balance
// source a client belongs to the server its address hashes to among the
// servers that are up, as in HAProxy: when that server is at maxconn, pinned
// is it, and the connection waits for it rather than going elsewhere (a retry
// after a failed connect goes to a server not yet tried).
func (b *backend) pickLocked(ip net.IP, tried map[*serverState]bool) (s *serverState, full bool, pinned *serverState) {
	var buf1, buf2, buf3 [16]*serverState // no allocation for small backends
	active := buf1[:0]
	anyUp := false
	for _, st := range b.servers {
		if st.up && !st.cfg.Backup {
			anyUp = true
			active = append(active, st)
		}
	}
	if !anyUp {
		for _, st := range b.servers {
			if st.up && st.cfg.Backup {
				active = []*serverState{st} // only the first backup is used
				break
			}
		}
	}
	if len(active) == 0 {
		return nil, false, nil
	}
	if b.cfg.Balance == Source && len(tried) == 0 {
		st := hashPick(active, ip)
		if st.cfg.MaxConn == 0 || st.cur < st.cfg.MaxConn {
			return st, false, nil
		}
		return nil, true, st
	}
	free, fresh := buf2[:0], buf3[:0]
	for _, st := range active {
		if st.cfg.MaxConn == 0 || st.cur < st.cfg.MaxConn {
			free = append(free, st)
			if !tried[st] {
				fresh = append(fresh, st)
			}
		}
	}
	if len(free) == 0 {
		return nil, true, nil
	}
	if len(fresh) > 0 {
		free = fresh
	}
	switch b.cfg.Balance {
	case First:
		return free[0], false, nil
	case LeastConn:
		best := -1
		for i := range free {
			st := free[(b.rotate+i)%len(free)]
			if best < 0 || st.cur*free[best].cfg.weight() < free[best].cur*st.cfg.weight() {
				best = (b.rotate + i) % len(free)
			}
		}
		b.rotate++
		return free[best], false, nil
	case Source:
		return hashPick(free, ip), false, nil
	default: // RoundRobin: smooth weighted round-robin
		total := 0
		var best *serverState
		for _, st := range free {
			w := st.cfg.weight()
			st.swrr += w
			total += w
			if best == nil || st.swrr > best.swrr {
				best = st
			}
		}
		best.swrr -= total
		return best, false, nil
	}
}

// hashPick chooses among servers by a hash of the client address, weighted.
func hashPick(servers []*serverState, ip net.IP) *serverState {
	total := 0
	for _, st := range servers {
		total += st.cfg.weight()
	}
	h := fnv.New32a()
	h.Write(ip)
	n := int(h.Sum32() % uint32(total))
	for _, st := range servers {
		if n -= st.cfg.weight(); n < 0 {
			return st
		}
	}
	return servers[len(servers)-1]
}

// setUp records a health state change and lets queued connections retry.
func (b *backend) setUp(s *serverState, up bool, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s.up == up {
		return false
	}
	s.up = up
	s.lastChange = now
	b.wakeLocked()
	return true
}
