package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or
// Close, and by Reload after them.
var ErrServerClosed = errors.New("portfwd: forwarder closed")

// Forwarder accepts connections on the binds of its configuration's
// frontends and forwards them to their backends' servers.
//
// Its lifecycle is net/http's: ListenAndServe (or Serve with listeners the
// caller opened), Shutdown to drain, Close to end everything, and
// ErrServerClosed from Serve once either was called. Unlike an http.Server,
// a Forwarder is built by New from a Config, which New validates once and
// only Reload replaces afterwards (under the Forwarder's lock, while
// connections run); its zero value is not usable. The exported fields may be
// set between New and Serve.
type Forwarder struct {
	// Logger receives connection errors and health changes; nil discards.
	Logger *slog.Logger
	// ProxyHeaderTimeout bounds the wait for a PROXY header on accept-proxy
	// binds; zero means DefaultProxyHeaderTimeout.
	ProxyHeaderTimeout time.Duration

	mu        sync.Mutex
	cfg       *Config
	listeners map[string]*listener // by bind address
	frontends map[string]*frontend
	backends  map[string]*backend
	global    slots
	checks    *checkers
	pairs     map[*pair]struct{}
	listening bool          // Serve has put the configuration in place
	started   chan struct{} // closed when listening becomes true (tests)
	closed    bool
	done      chan struct{}
	sweepWake chan struct{}
	sweepTick atomic.Int64 // the sweeper's current interval in ns
	handlers  atomic.Int64 // connections accepted and not yet finished
	loops     []*evloop    // set once by Serve
	nextLoop  atomic.Uint32
	noLoops   bool // forward every connection with goroutines (tests)
	// how connections went: taken by a loop, handed to splicing goroutines,
	// handed back after a failed connect (tests read them)
	loopAdded, loopBulk, loopRetry atomic.Int64
	ctx                            context.Context
	cancel                         context.CancelFunc // ends binds, queue waits and connects on Close
	wg                             sync.WaitGroup     // accept loops, connections, the sweeper
}

// New returns a Forwarder for cfg, which must pass Validate. It opens
// nothing until ListenAndServe or Serve.
func New(cfg *Config, logger *slog.Logger) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Forwarder{
		ctx:       ctx,
		cancel:    cancel,
		Logger:    logger,
		cfg:       cfg,
		listeners: map[string]*listener{},
		pairs:     map[*pair]struct{}{},
		started:   make(chan struct{}),
		done:      make(chan struct{}),
		sweepWake: make(chan struct{}, 1),
	}, nil
}

func (f *Forwarder) logger() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

// ListenAndServe opens every bind of the configuration and forwards the
// connections accepted there, as Serve does. It fails, opening nothing, when
// a bind cannot be opened; otherwise it returns ErrServerClosed after
// Shutdown or Close.
func (f *Forwarder) ListenAndServe() error {
	if err := f.start(nil, true); err != nil {
		return err
	}
	<-f.done
	return ErrServerClosed
}

// Serve forwards the connections accepted on ls, starts the health checks,
// and blocks until Shutdown or Close, then returns ErrServerClosed. When it
// cannot start (Shutdown or Close came first, a listener is not what it
// needs, Serve is already running), it closes ls and returns the error.
//
// Serve differs from http.Server.Serve, which serves one listener and may
// run once for each of several: a Forwarder serves all the binds of its
// configuration together, and Reload opens and closes binds as the
// configuration changes. So Serve takes one listener for each bind address,
// in the order of Config.BindAddrs (Config.Listen opens them so), and runs
// once. Each must be a *net.TCPListener: the event loops accept with accept4
// on its socket, and splice needs TCP sockets on both sides. A listener
// stays open across reloads that keep its bind address and closes with the
// first reload that drops it.
func (f *Forwarder) Serve(ls ...net.Listener) error {
	if err := f.start(ls, false); err != nil {
		return err
	}
	<-f.done
	return ErrServerClosed
}

// start puts the configuration in place: the event loops, the binds (the
// listeners given, or opened here when open is set), the health checks and
// the sweeper. On error it closes ls and leaves nothing running.
func (f *Forwarder) start(ls []net.Listener, open bool) (err error) {
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		closeAll()
		return ErrServerClosed
	case f.listening:
		closeAll()
		return errors.New("portfwd: Serve called on a Forwarder already serving")
	}
	var given map[string]*net.TCPListener
	if !open {
		if given, err = matchListeners(f.cfg, ls); err != nil {
			closeAll()
			return err
		}
	}
	f.startLoops()
	if err := f.applyLocked(f.ctx, f.cfg, given); err != nil {
		f.stopLoops()
		return err
	}
	f.listening = true
	close(f.started)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.sweep()
	}()
	return nil
}

// matchListeners pairs ls with the bind addresses of cfg (see Serve).
func matchListeners(cfg *Config, ls []net.Listener) (map[string]*net.TCPListener, error) {
	addrs := cfg.BindAddrs()
	if len(ls) != len(addrs) {
		return nil, fmt.Errorf("portfwd: Serve: %d listeners for %d bind addresses", len(ls), len(addrs))
	}
	given := make(map[string]*net.TCPListener, len(ls))
	for i, l := range ls {
		tl, ok := l.(*net.TCPListener)
		if !ok {
			return nil, fmt.Errorf("portfwd: Serve: the listener for bind %s is a %T, not a *net.TCPListener", addrs[i], l)
		}
		given[addrs[i]] = tl
	}
	return given, nil
}

func (f *Forwarder) startListener(l *listener) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.acceptLoop(l)
	}()
}

// Addrs returns the addresses the binds of the named frontend listen on, in
// configuration order (useful with port 0).
func (f *Forwarder) Addrs(frontend string) []net.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []net.Addr
	for _, fc := range f.cfg.Frontends {
		if fc.Name != frontend {
			continue
		}
		for _, bd := range fc.Binds {
			if l := f.listeners[bd.Addr]; l != nil {
				out = append(out, l.ln.Addr())
			}
		}
	}
	return out
}

// Shutdown stops accepting and health checking (Serve and ListenAndServe
// return ErrServerClosed at once), then waits for established connections to
// end by themselves and for the Forwarder's goroutines to finish. When ctx
// ends first, it returns ctx.Err() and leaves the connections running (call
// Close to end them).
func (f *Forwarder) Shutdown(ctx context.Context) error {
	f.closeListeners()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if f.handlers.Load() == 0 {
			f.cancel() // nothing left to sweep
			f.wg.Wait()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the binds and every connection, and waits for all of the
// Forwarder's goroutines to end; Serve and ListenAndServe return
// ErrServerClosed. It always returns nil and is safe to call more than once,
// and after Shutdown.
func (f *Forwarder) Close() error {
	f.closeListeners()
	f.cancel()
	f.mu.Lock()
	for p := range f.pairs {
		p.close()
	}
	f.mu.Unlock()
	f.wg.Wait()
	return nil
}

func (f *Forwarder) closeListeners() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
	}
	for addr, l := range f.listeners {
		l.close()
		delete(f.listeners, addr)
	}
	if f.checks != nil {
		f.checks.stop()
		f.checks = nil
	}
}

// slots bounds concurrent connections (maxconn); nil means no bound.
type slots chan struct{}

func newSlots(n int) slots {
	if n <= 0 {
		return nil
	}
	return make(slots, n)
}

// take waits for a slot until stop is closed.
func (s slots) take(stop <-chan struct{}) bool {
	if s == nil {
		return true
	}
	select {
	case s <- struct{}{}:
		return true
	case <-stop:
		return false
	}
}

func (s slots) give() {
	if s != nil {
		<-s
	}
}

var _ io.Closer = (*Forwarder)(nil)
