package portfwd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gitfleet/gitfleet"
)

// frontend is the live state of one frontend of the running configuration.
type frontend struct {
	cfg     *Frontend
	backend *backend // nil: connections are closed
	slots   slots

	*counters // shared with the same-named frontend across reloads
}

// listener is one bound socket. It survives reloads that keep its address;
// set points it at the reloaded frontend.
type listener struct {
	ln   *net.TCPListener
	stop chan struct{}
	once sync.Once

	// A duplicate of ln's socket for accept4 in the runtime's poller (a
	// listener's own RawConn cannot wait); nil without event loops.
	file *os.File
	raw  syscall.RawConn

	mu     sync.Mutex
	fe     *frontend
	bind   Bind
	global slots
}

func (l *listener) set(fe *frontend, bd Bind, global slots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fe, l.bind, l.global = fe, bd, global
}

func (l *listener) current() (*frontend, Bind, slots) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fe, l.bind, l.global
}

func (l *listener) close() {
	l.once.Do(func() {
		close(l.stop)
		l.ln.Close()
		if l.file != nil {
			l.file.Close()
		}
	})
}

// Listen opens a listener for each of the configuration's bind addresses, in
// the order of BindAddrs, ready for Forwarder.Serve: a program that opens them
// itself learns at once whether every bind can be opened, and their
// addresses (with port 0). On error it closes those it opened.
func (c *Config) Listen(ctx context.Context) ([]net.Listener, error) {
	var ls []net.Listener
	for _, addr := range c.BindAddrs() {
		ln, err := listenBind(ctx, addr)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("portfwd: bind %s: %w", addr, err)
		}
		ls = append(ls, ln)
	}
	return ls, nil
}

// listenBind opens a bind address. Its connections get no TCP keep-alive, as
// in HAProxy without option tcpka: it costs four setsockopt calls per
// connection.
func listenBind(ctx context.Context, addr string) (*net.TCPListener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// newListener wraps a bound socket; with event loops it also keeps a
// pollable duplicate of the socket for raw accepts.
func (f *Forwarder) newListener(ln *net.TCPListener) (*listener, error) {
	l := &listener{ln: ln, stop: make(chan struct{})}
	if len(f.loops) == 0 {
		return l, nil
	}
	file, err := ln.File()
	if err != nil {
		return nil, err
	}
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	// Accepted sockets inherit TCP_NODELAY from the listening socket
	// (Linux copies the option), which saves a system call per connection.
	raw.Control(func(fd uintptr) { sysSetNoDelay(int(fd)) })
	l.file, l.raw = file, raw
	return l, nil
}

// acceptLoop accepts connections while the frontend and global maxconn
// allow. A connection goes to an event loop when it can (see evloop), else
// to its own goroutine.
func (f *Forwarder) acceptLoop(l *listener) {
	// Accept errors (EMFILE, ENOBUFS, ...) wait 5 ms, doubling up to 1 s,
	// each delay shortened at random by up to a fifth.
	retry := gitfleet.Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	failures := 0
	for {
		slotFE, bd, global := l.current()
		feSlots := slotFE.slots
		if !feSlots.take(l.stop) {
			return
		}
		if !global.take(l.stop) {
			feSlots.give()
			return
		}
		var c *net.TCPConn
		fd := -1
		var peer *net.TCPAddr
		var err error
		if l.raw != nil && !bd.AcceptProxy {
			fd, peer, err = acceptRaw(l.raw)
		} else {
			c, err = l.ln.AcceptTCP()
		}
		if err != nil {
			feSlots.give()
			global.give()
			select {
			case <-l.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				// A listener given to Serve, closed by its owner.
				f.logger().Warn("bind closed: no longer accepting", "bind", l.ln.Addr().String())
				return
			}
			f.logger().Warn("accept failed", "bind", l.ln.Addr().String(), "err", err)
			failures++
			t := time.NewTimer(retry.Delay(failures))
			select {
			case <-l.stop:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		failures = 0
		fe, bd, _ := l.current() // a reload may have happened during Accept
		if c == nil {
			if f.dispatch(fd, peer, fe, bd, feSlots, global) {
				continue
			}
			if c, err = fileTCPConn(fd); err != nil {
				sysClose(fd)
				feSlots.give()
				global.give()
				continue
			}
		}
		f.handlers.Add(1)
		f.goHandle(c, fe, bd, feSlots, global, handoff{})
	}
}

// goHandle runs handle in a goroutine of its own for a connection counted in
// f.handlers, and gives back its count and its maxconn slots at the end.
func (f *Forwarder) goHandle(c *net.TCPConn, fe *frontend, bd Bind, feSlots, global slots, h handoff) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer f.handlers.Add(-1)
		defer global.give()
		defer feSlots.give()
		f.handle(c, fe, bd, h)
	}()
}
