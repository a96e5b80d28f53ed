package portfwd

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The event loops forward the connections that need nothing but their bytes
// moved, without a goroutine per connection: a connection costs about 15
// system calls there (accept, connect, the reads and writes, shutdown, two
// closes and two epoll registrations) against about 25 and two goroutines
// through the net package, whose poller adds getsockname, getpeername and
// SO_ERROR calls, an extra read per direction to see the end of input, and
// the scheduling of two goroutines. HAProxy's design is the same: one epoll
// loop per thread, edge-triggered, EPOLLRDHUP to see a peer's FIN without a
// read.
//
// A listener's accept goroutine takes the frontend and global maxconn slots,
// accepts with accept4, picks a server when one has a free slot without
// queueing, starts a non-blocking connect and registers both sockets with a
// loop. Everything else goes the goroutine way (handle): accept-proxy binds,
// servers named by host name, a backend whose servers are all busy or down
// (the queue and its timeout), a connect that fails (the retries). A
// connection whose read fills the loop's buffer is a bulk transfer: the loop
// hands its sockets, with any bytes read but not yet written, to a pair of
// goroutines that splice (pair.run).
//
// This file holds the loop itself: epoll, the wake-up, registration and the
// timeout scan. The accept side (acceptRaw, dispatch) is in listener.go, a
// loop connection's state and byte pump in loopconn.go, and the two ways out
// of a loop (bulk hand-off, retry after a failed connect) in loophandoff.go.

// loopsAvailable says whether a Forwarder forwards plain connections in event
// loops on this system (Linux only; see loops_other.go).
const loopsAvailable = true

// loopBuf is the loop's read size; a read that fills it marks a bulk
// transfer.
const loopBuf = smallCopy

// evloop is one epoll event loop.
type evloop struct {
	f      *Forwarder
	epfd   int
	wakefd int // eventfd: Close and new short timeouts wake the loop
	base   time.Time

	mu     sync.Mutex
	closed bool                // the loop has ended: add and wake refuse
	sides  map[uint64]*lside   // by registration key
	conns  map[*lconn]struct{} // for Stats, timeouts and Close
	gen    uint32

	quit     atomic.Bool   // stop without the Forwarder closing (Listen failed)
	done     chan struct{} // closed when run returns
	nextScan atomic.Int64  // loop clock (ns) of the next timeout scan
	buf      []byte
	events   []unix.EpollEvent
	ready    []*lside
}

// startLoops starts one event loop per processor, at most four. Without
// epoll (never on Linux in practice) connections take the goroutine way.
func (f *Forwarder) startLoops() {
	if f.noLoops || len(f.loops) > 0 {
		return
	}
	n := min(runtime.GOMAXPROCS(0), 4)
	for range n {
		l, err := newLoop(f)
		if err != nil {
			f.logger().Warn("event loop unavailable; forwarding with goroutines", "err", err)
			break
		}
		f.loops = append(f.loops, l)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer close(l.done)
			l.run()
		}()
	}
}

// stopLoops ends the event loops (which have no connections yet).
func (f *Forwarder) stopLoops() {
	for _, l := range f.loops {
		l.quit.Store(true)
		l.wake()
		<-l.done
	}
	f.loops = nil
}

func newLoop(f *Forwarder) (*evloop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that the runtime's poller takes it (see run).
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN} // key 0: the wake-up
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wfd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	l := &evloop{
		f: f, epfd: epfd, wakefd: wfd, base: time.Now(), done: make(chan struct{}),
		sides:  map[uint64]*lside{},
		conns:  map[*lconn]struct{}{},
		buf:    make([]byte, loopBuf),
		events: make([]unix.EpollEvent, 128),
		ready:  make([]*lside, 128),
	}
	l.nextScan.Store(int64(maxSweep))
	return l, nil
}

// now is the loop clock: monotonic nanoseconds since the loop started.
func (l *evloop) now() int64 { return int64(time.Since(l.base)) }

// wake makes the loop look at its clock and state. It does nothing once the
// loop has ended (its eventfd is closed then).
func (l *evloop) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	one := [8]byte{1}
	unix.Write(l.wakefd, one[:])
}

// run processes events until the Forwarder closes, then closes the loop's
// connections. The loop waits in the runtime's poller, on the epoll
// descriptor itself (which is readable while events are pending), and
// collects the events with a non-blocking epoll_wait: a goroutine parked that
// way holds no thread, where one blocked in epoll_wait would hold one and
// have the runtime hand its processor to another thread each time.
func (l *evloop) run() {
	stop := context.AfterFunc(l.f.ctx, l.wake)
	file := os.NewFile(uintptr(l.epfd), "epoll")
	defer func() {
		l.closeAll() // marks the loop closed: add and wake leave it alone
		file.Close()
		unix.Close(l.wakefd)
		stop()
	}()
	raw, err := file.SyscallConn()
	if err != nil {
		l.f.logger().Error("event loop failed", "err", err)
		return
	}
	var deadline int64
	for {
		if next := l.nextScan.Load(); next != deadline {
			deadline = next
			file.SetReadDeadline(l.base.Add(time.Duration(next)))
		}
		n := 0
		var werr error
		err := raw.Read(func(fd uintptr) bool {
			for {
				n, werr = sysEpollWait(int(fd), l.events)
				if werr != unix.EINTR {
					return n > 0 || werr != nil
				}
			}
		})
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) || werr != nil {
			l.f.logger().Error("event loop failed", "err", firstErr(err, werr))
			return
		}
		if l.f.ctx.Err() != nil || l.quit.Load() {
			return
		}
		now := l.now()
		l.mu.Lock()
		for i := range n {
			ev := &l.events[i]
			l.ready[i] = l.sides[uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32]
		}
		l.mu.Unlock()
		for i := range n {
			s := l.ready[i]
			l.ready[i] = nil
			if s == nil {
				if l.events[i].Fd == 0 && l.events[i].Pad == 0 {
					var b [8]byte
					unix.Read(l.wakefd, b[:])
				}
				continue
			}
			if s.c.done {
				continue // closed earlier in this batch
			}
			e := l.events[i].Events
			if e&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				s.readable = true
			}
			if e&unix.EPOLLOUT != 0 {
				s.writable = true
			}
			if e&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
				s.rdhup = true
			}
			if e&unix.EPOLLERR != 0 {
				s.failed = true
			}
			s.c.step(now)
		}
		if now >= l.nextScan.Load() {
			l.scan(now)
		}
	}
}

// add registers a connection whose connect has started. Both sockets are
// registered under l.mu, so the loop sees neither before both are in place.
func (l *evloop) add(c *lconn) error {
	c.l = l
	c.client.c, c.server.c = c, c
	now := l.now()
	c.client.last, c.server.last = now, now
	c.client.writable = true
	if d := c.bcfg.Timeouts.Connect; d > 0 {
		c.deadline = now + int64(d)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrServerClosed
	}
	for _, s := range []*lside{&c.client, &c.server} {
		l.gen++
		if l.gen == 0 {
			l.gen = 1 // key 0 is the wake-up
		}
		s.key = uint64(uint32(s.fd)) | uint64(l.gen)<<32
		ev := unix.EpollEvent{
			Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET,
			Fd:     int32(s.fd), Pad: int32(l.gen),
		}
		if err := sysEpollCtl(l.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			if s == &c.server {
				sysEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.client.fd, nil)
				delete(l.sides, c.client.key)
			}
			l.mu.Unlock()
			return os.NewSyscallError("epoll_ctl", err)
		}
		l.sides[s.key] = s
	}
	l.conns[c] = struct{}{}
	// Counted before the loop can see it: a test that has had its echo
	// back must find the connection counted.
	l.f.loopAdded.Add(1)
	l.mu.Unlock()

	// Make the loop scan soon enough for this connection's timeouts.
	next := int64(maxSweep)
	if c.deadline > 0 {
		next = c.deadline - now
	}
	if t := minPositive(c.tmo.clientIdle, c.tmo.serverIdle); t > 0 {
		next = min(next, int64(sweepInterval(t)))
	}
	for {
		cur := l.nextScan.Load()
		if now+next >= cur {
			break
		}
		if l.nextScan.CompareAndSwap(cur, now+next) {
			l.wake()
			break
		}
	}
	return nil
}

// scan enforces connect and inactivity timeouts and sets the next scan.
func (l *evloop) scan(now int64) {
	next := int64(maxSweep)
	var late, idle []*lconn
	l.mu.Lock()
	for c := range l.conns {
		if c.connecting {
			if c.deadline > 0 {
				if now >= c.deadline {
					late = append(late, c)
				} else {
					next = min(next, c.deadline-now)
				}
			}
			continue
		}
		ct, st := c.tmo.current(c.halfOpen)
		if t := minPositive(ct, st); t > 0 {
			next = min(next, int64(sweepInterval(t)))
		}
		if ct > 0 && now-c.client.last > int64(ct) || st > 0 && now-c.server.last > int64(st) {
			idle = append(idle, c)
		}
	}
	l.mu.Unlock()
	for _, c := range late {
		c.connectFailed(os.ErrDeadlineExceeded)
	}
	for _, c := range idle {
		if log := l.f.logger(); log.Enabled(l.f.ctx, slog.LevelInfo) {
			log.Info("connection closed: inactivity timeout", "client", c.src.String())
		}
		c.close()
	}
	l.nextScan.Store(now + next)
}

// closeAll closes every connection of the loop (on Close).
func (l *evloop) closeAll() {
	l.mu.Lock()
	l.closed = true
	all := make([]*lconn, 0, len(l.conns))
	for c := range l.conns {
		all = append(all, c)
	}
	l.mu.Unlock()
	for _, c := range all {
		c.close()
	}
}

// liveBytes adds the bytes moved by the loop's open connections to open and
// openC (see Stats).
func (l *evloop) liveBytes(add func(s *serverState, fe, be *counters, in, out int64)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		add(c.s, c.fe.counters, c.b.counters, c.in.Load(), c.out.Load())
	}
}
