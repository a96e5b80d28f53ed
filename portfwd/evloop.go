package portfwd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
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

// lside is one socket of a loop connection.
type lside struct {
	c   *lconn
	fd  int
	key uint64 // fd and a generation, the epoll event's data

	readable, writable bool // edge-triggered readiness not yet used up
	rdhup              bool // the peer's FIN arrived
	failed             bool // EPOLLERR: the socket has an error
	eof                bool // all input read (and passed on)
	shut               bool // our output shut down (half-close passed on)

	pend    []byte  // bytes read from the other side, not yet written here
	pendBuf *[]byte // the pool buffer pend lives in, if any
	last    int64   // loop clock of the last read or write
}

// lconn is a connection pair forwarded by a loop.
type lconn struct {
	l              *evloop
	client, server lside
	connecting     bool
	deadline       int64 // loop clock by which the connect must complete; 0: none
	done           bool

	fe       *frontend
	b        *backend
	bcfg     *Backend // b's configuration when the connection started
	scfg     *Server  // s's
	s        *serverState
	bd       Bind
	feSlots  slots
	global   slots
	src, dst net.Addr // for a handoff after a failed connect
	tmo      idleTimeouts
	halfOpen bool // one direction has ended

	in, out atomic.Int64 // bytes read from the client, from the server
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
	l.mu.Unlock()
	l.f.loopAdded.Add(1)

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

// step moves what can be moved on c after an event.
func (c *lconn) step(now int64) {
	if c.connecting {
		if c.server.failed || c.server.rdhup && !c.server.writable {
			c.connectFailed(connectError(c.server.fd))
			return
		}
		if !c.server.writable {
			return
		}
		c.connecting = false
		c.s.total.Add(1)
		c.b.total.Add(1)
		c.b.cur.Add(1)
	}
	c.pump(&c.client, &c.server, &c.in, now)
	if !c.done {
		c.pump(&c.server, &c.client, &c.out, now)
	}
	if c.done {
		return
	}
	if c.client.eof && c.server.eof && c.client.shut && c.server.shut {
		c.close()
		return
	}
	if (c.client.failed || c.server.failed) && !c.done {
		c.close() // an error with nothing left to read
	}
}

// pump moves bytes from src to dst until one of them would block, then
// passes an end of input on as a half-close.
func (c *lconn) pump(src, dst *lside, count *atomic.Int64, now int64) {
	l := c.l
	for {
		if len(dst.pend) > 0 {
			if !dst.writable {
				return
			}
			n, err := sysSend(dst.fd, dst.pend, 0)
			if err == unix.EAGAIN {
				dst.writable = false
				return
			}
			if err != nil {
				c.close()
				return
			}
			dst.last = now
			dst.pend = dst.pend[n:]
			if len(dst.pend) > 0 {
				continue
			}
			dst.freePend()
		}
		if src.eof {
			if !dst.shut {
				sysShutdownWrite(dst.fd)
				dst.shut = true
				c.halfOpen = true
			}
			return
		}
		if !src.readable {
			return
		}
		n, err := sysRead(src.fd, l.buf)
		switch {
		case err == unix.EAGAIN:
			src.readable = false
			return
		case err != nil:
			c.close()
			return
		case n == 0:
			src.eof = true
			continue
		}
		src.last = now
		count.Add(int64(n))
		if n == len(l.buf) {
			c.handoff(src, l.buf[:n])
			return
		}
		// A short read emptied the socket: the next data brings a new
		// edge. With the FIN already in, this was the last of it.
		src.readable = false
		src.eof = src.rdhup
		flags := 0
		if src.eof && !dst.shut {
			flags = unix.MSG_MORE // the FIN follows: one segment for both
		}
		w := 0
		if dst.writable {
			w, err = sysSend(dst.fd, l.buf[:n], flags)
			switch {
			case err == unix.EAGAIN:
				w = 0
				dst.writable = false
			case err != nil:
				c.close()
				return
			default:
				dst.last = now
			}
		}
		if w < n {
			dst.setPend(l.buf[w:n])
		}
	}
}

// setPend keeps b (copied) to be written to s when it is writable.
func (s *lside) setPend(b []byte) {
	s.pendBuf = smallBufs.Get().(*[]byte)
	s.pend = (*s.pendBuf)[:copy(*s.pendBuf, b)]
}

func (s *lside) freePend() {
	if s.pendBuf != nil {
		smallBufs.Put(s.pendBuf)
		s.pendBuf = nil
	}
	s.pend = nil
}

// unregister takes c's sockets out of the loop; the loop ignores their
// remaining events.
func (c *lconn) unregister(del bool) {
	c.done = true
	l := c.l
	l.mu.Lock()
	delete(l.sides, c.client.key)
	delete(l.sides, c.server.key)
	delete(l.conns, c)
	if del {
		sysEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.client.fd, nil)
		sysEpollCtl(l.epfd, unix.EPOLL_CTL_DEL, c.server.fd, nil)
	}
	l.mu.Unlock()
}

// close ends c: both sockets close (which also takes them out of epoll).
func (c *lconn) close() {
	if c.done {
		return
	}
	c.unregister(false)
	sysClose(c.client.fd)
	sysClose(c.server.fd)
	c.client.freePend()
	c.server.freePend()
	in, out := c.in.Load(), c.out.Load()
	if !c.connecting {
		c.b.cur.Add(-1)
		c.addBytes(in, out)
	}
	c.b.release(c.s)
	c.finish()
}

func (c *lconn) addBytes(in, out int64) {
	c.fe.bytesIn.Add(in)
	c.fe.bytesOut.Add(out)
	c.b.bytesIn.Add(in)
	c.b.bytesOut.Add(out)
	c.s.bytesIn.Add(in)
	c.s.bytesOut.Add(out)
}

// finish releases what the accept goroutine took for the connection.
func (c *lconn) finish() {
	c.fe.cur.Add(-1)
	c.feSlots.give()
	c.global.give()
	c.l.f.handlers.Add(-1)
}

// connectFailed hands a connection whose connect failed (or timed out) to the
// goroutine way, which retries other servers.
func (c *lconn) connectFailed(err error) {
	c.l.f.loopRetry.Add(1)
	c.unregister(true)
	sysClose(c.server.fd)
	c.l.f.retryElsewhere(c, err)
}

// retryElsewhere gives a connection whose first connect failed, before any
// byte moved, to handle, which tries the other servers: the server's slot is
// released and its failure counted and logged as attempt 1. The connection's
// frontend count, f.handlers count and maxconn slots pass to handle's
// goroutine, or are given back here if the socket cannot be handed over.
func (f *Forwarder) retryElsewhere(c *lconn, err error) {
	c.client.freePend()
	c.server.freePend()
	c.s.connErrs.Add(1)
	c.b.connErrs.Add(1)
	c.b.release(c.s)
	if l := f.logger(); l.Enabled(f.ctx, slog.LevelInfo) {
		l.Info("connect failed", "frontend", c.fe.cfg.Name, "client", c.src.String(), "backend", c.b.name, "server", c.scfg.Name, "attempt", 1, "err", err)
	}
	cc, cerr := fileTCPConn(c.client.fd)
	if cerr != nil {
		sysClose(c.client.fd)
		c.fe.cur.Add(-1)
		f.handlers.Add(-1)
		c.feSlots.give()
		c.global.give()
		return
	}
	f.goHandle(cc, c.fe, c.bd, c.feSlots, c.global, handoff{failed: c.s, counted: true, src: c.src, dst: c.dst})
}

// connectError returns the error of a failed non-blocking connect.
func connectError(fd int) error {
	n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return os.NewSyscallError("getsockopt", err)
	}
	if n == 0 {
		return os.NewSyscallError("connect", unix.ECONNREFUSED)
	}
	return os.NewSyscallError("connect", unix.Errno(n))
}

// handoff passes a bulk transfer to a pair of splicing goroutines, with the
// bytes read from src just now (chunk, which the loop reuses) and any bytes
// not yet written either way.
func (c *lconn) handoff(src *lside, chunk []byte) {
	f := c.l.f
	f.loopBulk.Add(1)
	c.unregister(true)
	toServer, toClient := c.server.takePend(), c.client.takePend()
	if src == &c.client {
		toServer = append(toServer, chunk...)
	} else {
		toClient = append(toClient, chunk...)
	}
	cc, err1 := fileTCPConn(c.client.fd)
	sc, err2 := fileTCPConn(c.server.fd)
	if err1 != nil || err2 != nil {
		f.logger().Warn("connection closed: cannot hand over to splicing", "err", firstErr(err1, err2))
		if cc != nil {
			cc.Close()
		} else {
			sysClose(c.client.fd)
		}
		if sc != nil {
			sc.Close()
		} else {
			sysClose(c.server.fd)
		}
		c.b.cur.Add(-1)
		c.addBytes(c.in.Load(), c.out.Load())
		c.b.release(c.s)
		c.finish()
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer c.finish()
		defer c.b.release(c.s)
		defer c.b.cur.Add(-1)
		p := newPair(cc, sc, c.fe.cfg.Timeouts, c.bcfg.Timeouts)
		p.fe, p.be, p.srv = c.fe.counters, c.b.counters, c.s
		p.preIn, p.preOut = toServer, toClient
		p.bulkIn, p.bulkOut = src == &c.client, src == &c.server
		if c.client.shut || c.server.shut {
			p.halfClosed.Store(true)
		}
		in, out := c.in.Load(), c.out.Load()
		if f.runPair(p) {
			in += p.in.Load()
			out += p.out.Load()
		} else {
			cc.Close()
			sc.Close()
		}
		c.addBytes(in, out)
	}()
}

// takePend returns a copy of the bytes pending for s and frees its buffer.
func (s *lside) takePend() []byte {
	b := bytes.Clone(s.pend)
	s.freePend()
	return b
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
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

// fileTCPConn turns a socket into a *net.TCPConn; fd is closed (the
// connection holds a duplicate).
func fileTCPConn(fd int) (*net.TCPConn, error) {
	file := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(file)
	file.Close()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		c.Close()
		return nil, os.NewSyscallError("socket", unix.ENOTSOCK)
	}
	// FileConn turns TCP keep-alive on; the listeners have it off, as HAProxy
	// does without option tcpka.
	tc.SetKeepAlive(false)
	return tc, nil
}
