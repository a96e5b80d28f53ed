package portfwd

import (
	"errors"
	"net"
	"sync"
	"time"
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
	})
}

// acceptLoop accepts connections while the frontend and global maxconn
// allow, and hands each to its own goroutine.
func (f *Forwarder) acceptLoop(l *listener) {
	backoff := 5 * time.Millisecond
	for {
		slotFE, _, global := l.current()
		feSlots := slotFE.slots
		if !feSlots.take(l.stop) {
			return
		}
		if !global.take(l.stop) {
			feSlots.give()
			return
		}
		c, err := l.ln.AcceptTCP()
		if err != nil {
			feSlots.give()
			global.give()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.logger().Warn("accept failed", "bind", l.ln.Addr().String(), "err", err)
			select {
			case <-l.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		fe, bd, _ := l.current() // a reload may have happened during Accept
		f.handlers.Add(1)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.handlers.Add(-1)
			defer global.give()
			defer feSlots.give()
			f.handle(c, fe, bd)
		}()
	}
}
