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

// ErrServerClosed is returned by Serve and Listen after Shutdown or Close.
var ErrServerClosed = errors.New("portfwd: forwarder closed")

// Forwarder accepts connections on the binds of its configuration's
// frontends and forwards them to their backends' servers. Create one with
// New; its exported fields may be set before Listen or Serve.
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
	listening bool
	closed    bool
	done      chan struct{}
	sweepWake chan struct{}
	sweepTick atomic.Int64 // the sweeper's current interval in ns
	handlers  atomic.Int64 // connections accepted and not yet finished
	loops     []*evloop    // set once by Listen
	nextLoop  atomic.Uint32
	noLoops   bool // forward every connection with goroutines (tests)
	// how connections went: taken by a loop, handed to splicing goroutines,
	// handed back after a failed connect (tests read them)
	loopAdded, loopBulk, loopRetry atomic.Int64
	ctx                            context.Context
	cancel                         context.CancelFunc // ends queue waits and connects on Close
	wg                             sync.WaitGroup     // accept loops, connections, the sweeper
}

// New returns a Forwarder for cfg, which must pass Validate. It opens
// nothing until Listen or Serve.
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

// Listen opens every bind of the configuration and starts accepting
// connections and running health checks, then returns. It fails, opening
// nothing, when a bind cannot be opened.
func (f *Forwarder) Listen(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrServerClosed
	}
	if f.listening {
		return nil
	}
	f.startLoops()
	if err := f.applyLocked(ctx, f.cfg); err != nil {
		f.stopLoops()
		return err
	}
	f.listening = true
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.sweep()
	}()
	return nil
}

// Serve calls Listen if it has not been called, then blocks until Shutdown
// or Close (returning ErrServerClosed) or until ctx ends (then it closes the
// Forwarder and returns ctx.Err()).
func (f *Forwarder) Serve(ctx context.Context) error {
	if err := f.Listen(ctx); err != nil {
		return err
	}
	select {
	case <-f.done:
		return ErrServerClosed
	case <-ctx.Done():
		f.Close()
		return ctx.Err()
	}
}

// Reload switches to cfg. Binds whose address is unchanged keep their
// sockets, new binds open, removed binds close; established connections
// continue with the settings they started with. Servers keep their health
// state when their backend, name and address are unchanged. On error
// (invalid cfg, a bind that cannot be opened) nothing changes.
func (f *Forwarder) Reload(ctx context.Context, cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrServerClosed
	}
	if !f.listening {
		f.cfg = cfg
		return nil
	}
	return f.applyLocked(ctx, cfg)
}

// applyLocked makes cfg the running configuration.
func (f *Forwarder) applyLocked(ctx context.Context, cfg *Config) error {
	// Open new binds first, so that a failure changes nothing.
	opened := map[string]*listener{}
	for _, fe := range cfg.Frontends {
		for _, bd := range fe.Binds {
			if _, ok := f.listeners[bd.Addr]; ok {
				continue
			}
			if _, ok := opened[bd.Addr]; ok {
				continue
			}
			// No TCP keep-alive, as in HAProxy without option tcpka: it
			// costs four setsockopt calls per connection.
			lc := net.ListenConfig{KeepAlive: -1}
			ln, err := lc.Listen(ctx, "tcp", bd.Addr)
			if err != nil {
				for _, l := range opened {
					l.close()
				}
				return fmt.Errorf("portfwd: frontend %s: bind %s: %w", fe.Name, bd.Addr, err)
			}
			l, err := f.newListener(ln.(*net.TCPListener))
			if err != nil {
				ln.Close()
				for _, l := range opened {
					l.close()
				}
				return fmt.Errorf("portfwd: frontend %s: bind %s: %w", fe.Name, bd.Addr, err)
			}
			opened[bd.Addr] = l
		}
	}

	now := time.Now()
	backends := map[string]*backend{}
	var list []*backend
	for _, bc := range cfg.Backends {
		b := newBackend(bc, f.backends[bc.Name], now)
		backends[bc.Name] = b
		list = append(list, b)
	}
	frontends := map[string]*frontend{}
	for _, fc := range cfg.Frontends {
		fe := &frontend{cfg: fc, backend: backends[fc.DefaultBackend], slots: newSlots(fc.MaxConn), counters: &counters{}}
		if old := f.frontends[fc.Name]; old != nil {
			fe.counters = old.counters
			if old.cfg.MaxConn == fc.MaxConn {
				fe.slots = old.slots // open connections keep counting
			}
		}
		frontends[fc.Name] = fe
	}
	if cfg.Global.MaxConn != f.cfg.Global.MaxConn || f.global == nil {
		f.global = newSlots(cfg.Global.MaxConn)
	}

	if f.checks != nil {
		f.checks.stop()
	}
	f.checks = startCheckers(list, f.logger())

	// Point every bind at its frontend; close those no longer configured.
	keep := map[string]bool{}
	for _, fc := range cfg.Frontends {
		for _, bd := range fc.Binds {
			keep[bd.Addr] = true
			l := f.listeners[bd.Addr]
			if l == nil {
				l = opened[bd.Addr]
				f.listeners[bd.Addr] = l
				defer f.startListener(l) // after the state below is in place
			}
			l.set(frontends[fc.Name], bd, f.global)
		}
	}
	for addr, l := range f.listeners {
		if !keep[addr] {
			l.close()
			delete(f.listeners, addr)
		}
	}
	f.cfg, f.frontends, f.backends = cfg, frontends, backends
	select {
	case f.sweepWake <- struct{}{}:
	default:
	}
	return nil
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

// Shutdown stops accepting and health checking, then waits for established
// connections to end by themselves. When ctx ends first, it returns
// ctx.Err() and leaves the connections running (call Close to end them).
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
// Forwarder's goroutines to end. It is safe to call more than once.
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
