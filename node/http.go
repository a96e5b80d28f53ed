package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// handler serves the node's HTTP requests with whatever handler is current: it
// grows from /status alone, while the node starts, to the full set of routes.
type handler struct {
	node *Node
	h    atomic.Pointer[http.Handler]
}

func (h *handler) set(next http.Handler) { h.h.Store(&next) }

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*h.h.Load()).ServeHTTP(w, r) }

// earlyRoutes answer while the node starts: /status and its health paths only.
func (n *Node) earlyRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /status", n.status)
	mux.HandleFunc(PathReady, n.serveReady)
	mux.HandleFunc(PathLive, serveLive)
	return mux
}

// routes returns the node's own routes in mux, with everything else passed to
// Node.Handler.
func (n *Node) routes(mux *http.ServeMux) http.Handler {
	mux.Handle("GET /status", n.status)
	mux.HandleFunc(PathReady, n.serveReady)
	mux.HandleFunc(PathLive, serveLive)
	if n.Handler != nil {
		mux.Handle("/", n.Handler)
	}
	return mux
}

// HTTP defaults; see Node.HTTPReadTimeout, MaxRequestBody and
// MaxHTTPConnections.
const (
	DefaultHTTPReadTimeout    = 30 * time.Second
	DefaultMaxRequestBody     = 1 << 20
	DefaultMaxHTTPConnections = 512
)

// limitBodies refuses a request whose declared body is over MaxRequestBody with
// 413 before reading it, bounds what any handler can read of one, and gives
// reading the body readTimeout: the deadline is set on the connection when the
// request arrives and lifted when the body has been read, so that a client
// dripping a body is cut off while a long-poll response (whose request has no
// body) is not. (http.Server.ReadTimeout would cancel such a response's
// context once it passed.)
func (n *Node) limitBodies(h http.Handler, readTimeout time.Duration) http.Handler {
	limit := n.MaxRequestBody
	if limit == 0 {
		limit = DefaultMaxRequestBody
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if limit >= 0 && r.ContentLength > limit {
			w.Header().Set("Connection", "close")
			http.Error(w, fmt.Sprintf("request body of %d bytes is over this server's limit of %d", r.ContentLength, limit), http.StatusRequestEntityTooLarge)
			return
		}
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(readTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
			}
		}
		if limit >= 0 {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the connection's read deadline once the body is read.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if err == io.EOF {
			b.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}

// HTTPConnections returns the HTTP connections open now (counted when the
// connection cap is on).
func (n *Node) HTTPConnections() int { return int(n.httpConns.Load()) }

// limitListener accepts a connection only while fewer than cap(slots) are open.
type limitListener struct {
	net.Listener
	slots     chan struct{}
	open      *atomic.Int64
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.open.Add(1)
	return &limitConn{Conn: c, release: func() { l.open.Add(-1); <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitConn gives its slot back once, at Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// startHTTP listens on server.address:server.port (with TLS when
// server.ssl.enabled) and serves h in the background; stop drains it.
func (n *Node) startHTTP(ctx context.Context, h http.Handler) (stop func(), err error) {
	cfg := n.Config
	addr := net.JoinHostPort(cfg.Server.Address, strconv.Itoa(cfg.Server.Port))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("HTTP: listen on %s (server.port): %w", addr, err)
	}
	readTimeout := n.HTTPReadTimeout
	if readTimeout <= 0 {
		readTimeout = DefaultHTTPReadTimeout
	}
	maxConns := n.MaxHTTPConnections
	if maxConns == 0 {
		maxConns = DefaultMaxHTTPConnections
	}
	if maxConns > 0 {
		ln = &limitListener{Listener: ln, slots: make(chan struct{}, maxConns), open: &n.httpConns, closed: make(chan struct{})}
	}
	srv := &http.Server{
		Handler:           n.limitBodies(h, readTimeout),
		ReadHeaderTimeout: min(10*time.Second, readTimeout),
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if cfg.Server.SSL.Enabled {
		cert, err := tls.LoadX509KeyPair(cfg.Server.SSL.Certificate, cfg.Server.SSL.CertificatePrivateKey)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("HTTPS: load server.ssl.certificate and server.ssl.certificate-private-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	} else {
		n.log.Warn("serving plain HTTP: fine for local use, but mirroring needs HTTPS (set server.ssl.enabled=true with a certificate)")
	}
	n.log.Info("HTTP listening", "addr", ln.Addr().String(), "url", cfg.PublicBaseURL())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("HTTP server failed", "err", err)
		}
	}()
	return func() {
		dctx, cancel := n.drainContext()
		defer cancel()
		if err := srv.Shutdown(dctx); err != nil {
			srv.Close()
		}
		<-done
	}, nil
}
