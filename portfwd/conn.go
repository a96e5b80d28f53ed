package portfwd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// handoff describes how far a connection got before handle took it over: a
// connection handed over by an event loop after its first connect failed has
// been counted by its frontend already and has one attempt behind it.
type handoff struct {
	failed   *serverState // the server whose connect failed; nil: none tried
	counted  bool         // the frontend counted the connection already
	src, dst net.Addr     // the client's addresses, when known
}

// handle forwards one accepted connection: it reads the PROXY header when
// the bind asks for one, picks a server (retrying others on connect
// failure), sends the server a PROXY header when configured, and then
// splices the two sockets together until both directions end.
func (f *Forwarder) handle(c *net.TCPConn, fe *frontend, bd Bind, h handoff) {
	defer c.Close()
	// Close ends the connection even while it waits for a PROXY header.
	defer context.AfterFunc(f.ctx, func() { c.Close() })()
	src, dst := h.src, h.dst
	if src == nil {
		src, dst = c.RemoteAddr(), c.LocalAddr()
	}
	// log builds its attributes only when something is logged: the
	// connection rate matters more than the cost of a closure.
	log := func(msg string, args ...any) {
		l := f.logger()
		if !l.Enabled(f.ctx, slog.LevelInfo) {
			return
		}
		l.Info(msg, append([]any{"frontend", fe.cfg.Name, "client", src.String()}, args...)...)
	}
	headerLen := 0
	if bd.AcceptProxy && h.failed == nil {
		hdr, n, err := readProxyHeader(c, orDuration(f.ProxyHeaderTimeout, DefaultProxyHeaderTimeout))
		if err != nil {
			log("connection refused", "err", err)
			return
		}
		headerLen = n
		if hdr.Command.IsProxy() && hdr.SourceAddr != nil {
			src, dst = hdr.SourceAddr, hdr.DestinationAddr
		}
	}
	if !h.counted {
		fe.total.Add(1)
		fe.cur.Add(1)
	}
	defer fe.cur.Add(-1)
	b := fe.backend
	if b == nil {
		log("connection closed: frontend has no backend")
		return
	}
	b.mu.Lock()
	bcfg := b.cfg
	b.mu.Unlock()

	var ip net.IP
	if a, ok := src.(*net.TCPAddr); ok {
		ip = a.IP
	}
	var tried map[*serverState]bool // made on the first failure
	first := 0
	if h.failed != nil {
		tried, first = map[*serverState]bool{h.failed: true}, 1
	}
	var s *serverState
	var sc *net.TCPConn
	for attempt := first; attempt <= bcfg.retries(); attempt++ {
		var err error
		s, err = b.acquire(f.ctx, ip, tried)
		if err != nil {
			log("connection closed", "backend", b.name, "err", err)
			return
		}
		b.mu.Lock()
		scfg := s.cfg // a reload replaces it
		b.mu.Unlock()
		sc, err = dialServer(f, scfg, bcfg.Timeouts.Connect, src, dst)
		if err == nil {
			break
		}
		s.connErrs.Add(1)
		b.connErrs.Add(1)
		b.release(s)
		if tried == nil {
			tried = map[*serverState]bool{}
		}
		tried[s] = true
		log("connect failed", "backend", b.name, "server", scfg.Name, "attempt", attempt+1, "err", err)
		s = nil
	}
	if s == nil {
		log("connection closed: retries exhausted", "backend", b.name)
		return
	}
	defer b.release(s)
	defer sc.Close()
	s.total.Add(1)
	b.total.Add(1)
	b.cur.Add(1)
	defer b.cur.Add(-1)

	p := newPair(c, sc, fe.cfg.Timeouts, bcfg.Timeouts)
	p.fe, p.be, p.srv, p.headerLen = fe.counters, b.counters, s, headerLen
	if f.runPair(p) {
		in, out := p.in.Load(), p.out.Load()
		fe.bytesIn.Add(in)
		fe.bytesOut.Add(out)
		b.bytesIn.Add(in)
		b.bytesOut.Add(out)
		s.bytesIn.Add(in)
		s.bytesOut.Add(out)
	}
}

// runPair forwards p until both directions end, tracked for Stats, timeouts
// and Close. It reports false, doing nothing, when the Forwarder is closing.
func (f *Forwarder) runPair(p *pair) bool {
	if !f.track(p) {
		return false
	}
	p.run()
	f.untrack(p)
	return true
}

// dialServer connects to a server and sends its PROXY header.
func dialServer(f *Forwarder, s *Server, timeout time.Duration, src, dst net.Addr) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: -1}
	conn, err := d.DialContext(f.ctx, "tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	sc := conn.(*net.TCPConn)
	if s.SendProxy != NoProxy {
		if err := writeProxyHeader(sc, s.SendProxy, src, dst); err != nil {
			sc.Close()
			return nil, err
		}
	}
	return sc, nil
}

// pair is an established client/server connection pair.
type pair struct {
	client, server       *net.TCPConn
	clientRaw, serverRaw syscall.RawConn
	start                time.Time
	fe, be               *counters
	srv                  *serverState
	headerLen            int // PROXY header bytes read from the client

	// bytes an event loop read and did not write before it handed the
	// pair over: client to server and server to client
	preIn, preOut []byte
	// the direction the loop saw a bulk transfer in, which splices at once
	bulkIn, bulkOut bool

	idleTimeouts
	meter pairMeter // what the kernel cannot tell (nothing on Linux)

	halfClosed atomic.Bool
	in, out    atomic.Int64 // bytes client->server and server->client, once done
	closeOnce  sync.Once
}

func newPair(c, s *net.TCPConn, ft, bt Timeouts) *pair {
	p := &pair{client: c, server: s, start: time.Now()}
	p.clientRaw, _ = c.SyscallConn()
	p.serverRaw, _ = s.SyscallConn()
	p.idleTimeouts = newIdleTimeouts(ft, bt)
	return p
}

// run copies both directions until both have ended. On Linux the copies are
// io.Copy between two *net.TCPConn, which the Go runtime performs with
// splice(2); elsewhere a copy loop (see forward).
// When one side ends its output the other side's output is shut down (a
// half-close); an error in either direction closes both sockets.
func (p *pair) run() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := p.forward(true)
		p.in.Store(n)
		p.finish(p.server, err)
	}()
	n, err := p.forward(false)
	p.out.Store(n)
	p.finish(p.client, err)
	wg.Wait()
	p.close()
}

func (p *pair) finish(dst *net.TCPConn, err error) {
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			// A reset is passed on as a reset (see lconn.abort).
			p.client.SetLinger(0)
			p.server.SetLinger(0)
		}
		p.close()
		return
	}
	p.halfClosed.Store(true)
	dst.CloseWrite()
}

func (p *pair) close() {
	p.closeOnce.Do(func() {
		p.client.Close()
		p.server.Close()
	})
}

// timeouts returns the inactivity timeouts that apply now.
func (p *pair) timeouts() (client, server time.Duration) {
	return p.current(p.halfClosed.Load())
}

func (f *Forwarder) track(p *pair) bool {
	f.mu.Lock()
	if f.ctx.Err() != nil {
		f.mu.Unlock()
		return false
	}
	f.pairs[p] = struct{}{}
	f.mu.Unlock()
	c, s := p.timeouts()
	if t := minPositive(c, s); t > 0 && sweepInterval(t) < time.Duration(f.sweepTick.Load()) {
		select {
		case f.sweepWake <- struct{}{}:
		default:
		}
	}
	return true
}

func (f *Forwarder) untrack(p *pair) {
	f.mu.Lock()
	delete(f.pairs, p)
	f.mu.Unlock()
}

// smallCopy is the size of a short exchange's buffer (the Linux copy's first
// phase, the event loop's read), and the read size that tells a bulk transfer.
const smallCopy = 16 << 10
