package portfwd

import (
	"log/slog"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// A connection leaves its event loop alive in two ways: a bulk transfer goes
// to a pair of splicing goroutines (handoff), and a connect that failed goes
// to handle, which retries the other servers (connectFailed,
// retryElsewhere). Both turn the raw sockets back into *net.TCPConn.

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

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
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
