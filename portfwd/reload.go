package portfwd

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Reload switches to cfg. Binds whose address is unchanged keep their
// sockets, new binds open, removed binds close; established connections
// continue with the settings they started with. Servers keep their health
// state when their backend, name and address are unchanged. On error
// (invalid cfg, a bind that cannot be opened) nothing changes. Before Serve,
// Reload only replaces the configuration that Serve will put in place.
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
	return f.applyLocked(ctx, cfg, nil)
}

// applyLocked makes cfg the running configuration. given holds listeners
// that Serve received, by bind address; the binds of cfg that are neither
// open nor given are opened here.
func (f *Forwarder) applyLocked(ctx context.Context, cfg *Config, given map[string]*net.TCPListener) error {
	// Take the given listeners and open new binds first, so that a failure
	// changes nothing (and closes what Serve was given).
	opened := map[string]*listener{}
	fail := func(err error) error {
		for _, l := range opened {
			l.close()
		}
		for addr, ln := range given {
			if opened[addr] == nil {
				ln.Close()
			}
		}
		return err
	}
	for addr, ln := range given {
		l, err := f.newListener(ln)
		if err != nil {
			return fail(fmt.Errorf("portfwd: bind %s: %w", addr, err))
		}
		opened[addr] = l
	}
	for _, fe := range cfg.Frontends {
		for _, bd := range fe.Binds {
			if _, ok := f.listeners[bd.Addr]; ok {
				continue
			}
			if _, ok := opened[bd.Addr]; ok {
				continue
			}
			ln, err := listenBind(ctx, bd.Addr)
			if err == nil {
				var l *listener
				if l, err = f.newListener(ln); err == nil {
					opened[bd.Addr] = l
					continue
				}
				ln.Close()
			}
			return fail(fmt.Errorf("portfwd: frontend %s: bind %s: %w", fe.Name, bd.Addr, err))
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
