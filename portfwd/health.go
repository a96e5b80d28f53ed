package portfwd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"
)

// checker runs the health checks of one server until its context ends.
type checker struct {
	b      *backend
	s      *serverState
	cfg    *Server
	check  time.Duration // "timeout check", zero if unset
	conn   time.Duration // "timeout connect"
	http   *HTTPCheck    // the backend's "option httpchk", nil for TCP checks
	tls    *tls.Config   // check-ssl, nil for plain checks
	logger *slog.Logger
}

// run checks every Inter: a TCP connect (to CheckPort when set), followed by
// a LOCAL PROXY header for send-proxy servers checked on their traffic port,
// then, with an HTTPCheck, one HTTP request whose response status must pass.
// Fall consecutive failures take the server down, Rise consecutive passes
// bring it back up.
func (c *checker) run(ctx context.Context) {
	inter := c.cfg.inter()
	// A connect gets the inter time, or min(connect, inter) when "timeout
	// check" is set, as in HAProxy.
	timeout := inter
	if c.check > 0 && c.conn > 0 {
		timeout = min(c.conn, inter)
	}
	// The response of an HTTP check gets "timeout check" once connected,
	// else the inter time.
	respTimeout := inter
	if c.check > 0 {
		respTimeout = c.check
	}
	t := time.NewTicker(inter)
	defer t.Stop()
	passes, fails := 0, 0
	for {
		err := c.probe(ctx, timeout, respTimeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			passes, fails = passes+1, 0
			if passes >= c.cfg.rise() && c.b.setUp(c.s, true, time.Now()) {
				c.logger.Info("server is up", "backend", c.b.name, "server", c.cfg.Name)
			}
		} else {
			c.s.checkFails.Add(1)
			passes, fails = 0, fails+1
			if fails >= c.cfg.fall() && c.b.setUp(c.s, false, time.Now()) {
				c.logger.Warn("server is down", "backend", c.b.name, "server", c.cfg.Name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *checker) probe(ctx context.Context, timeout, respTimeout time.Duration) error {
	addr := c.cfg.Addr
	if c.cfg.CheckPort != 0 {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = net.JoinHostPort(host, strconv.Itoa(c.cfg.CheckPort))
		}
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if c.cfg.SendProxy != NoProxy && c.cfg.CheckPort == 0 {
		conn.SetWriteDeadline(time.Now().Add(timeout))
		if err := writeProxyHeader(conn, c.cfg.SendProxy, nil, nil); err != nil {
			return err
		}
	}
	if c.tls == nil && c.http == nil {
		return nil
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	deadline := time.Now().Add(respTimeout)
	if c.tls != nil {
		tc := tls.Client(conn, c.tls)
		tc.SetDeadline(deadline)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS check: %w", err)
		}
		defer tc.Close()
		conn = tc
	}
	if c.http != nil {
		return c.http.probe(conn, deadline)
	}
	return nil
}

// checkers owns the health-check goroutines of one configuration.
type checkers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startCheckers(backends []*backend, logger *slog.Logger) *checkers {
	ctx, cancel := context.WithCancel(context.Background())
	cs := &checkers{cancel: cancel}
	for _, b := range backends {
		b.mu.Lock()
		for _, s := range b.servers {
			if !s.cfg.Check {
				continue
			}
			tlsCfg, err := checkTLSConfig(s.cfg)
			if err != nil {
				// Validate refused it; a file that went away since fails every check.
				logger.Error("health check TLS settings", "backend", b.name, "server", s.cfg.Name, "err", err)
				tlsCfg = &tls.Config{InsecureSkipVerify: true, VerifyConnection: func(tls.ConnectionState) error { return err }}
			}
			c := &checker{b: b, s: s, cfg: s.cfg, check: b.cfg.Timeouts.Check, conn: b.cfg.Timeouts.Connect, http: b.cfg.HTTPCheck, tls: tlsCfg, logger: logger}
			cs.wg.Add(1)
			go func() {
				defer cs.wg.Done()
				c.run(ctx)
			}()
		}
		b.mu.Unlock()
	}
	return cs
}

func (cs *checkers) stop() {
	cs.cancel()
	cs.wg.Wait()
}
