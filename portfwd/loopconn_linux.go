package portfwd

import (
	"bytes"
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A loop connection (lconn) is a client socket and a server socket moved by
// one event loop: step runs after each event on either, pump moves the bytes
// one way through the loop's buffer, and close ends the pair. Leaving the
// loop alive (a bulk transfer, a failed connect) is in loophandoff.go.

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
	switch {
	case c.client.failed && c.server.failed:
		c.close()
	case c.client.failed: // an error with nothing left to read
		c.abort(&c.server)
	case c.server.failed:
		c.abort(&c.client)
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
				c.abort(src)
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
				// When the other way has ended too, step closes both
				// sockets now, and close sends dst's FIN (all of dst's
				// input has been read, so it is not a reset): one system
				// call less than a shutdown first.
				if !(dst.eof && src.shut) {
					sysShutdownWrite(dst.fd)
				}
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
			c.abort(dst)
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
		// edge. With the FIN already in, this was the last of it; after a
		// reset (EPOLLERR) the next read returns the error, which aborts
		// the pair instead of passing on a clean end of input.
		src.readable = src.failed
		src.eof = src.rdhup && !src.failed
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
				c.abort(src)
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

// abort ends c after an error on the other socket (a reset, most often):
// healthy is closed with a reset too (SO_LINGER 0), as HAProxy passes an abort
// on, so that its peer learns at once that the connection failed instead of
// reading a clean end of input, and neither end keeps the connection's state
// through a FIN exchange and TIME_WAIT.
func (c *lconn) abort(healthy *lside) {
	if c.done {
		return
	}
	if !c.connecting {
		sysResetOnClose(healthy.fd)
	}
	c.close()
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

// takePend returns a copy of the bytes pending for s and frees its buffer.
func (s *lside) takePend() []byte {
	b := bytes.Clone(s.pend)
	s.freePend()
	return b
}
