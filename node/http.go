package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
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
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
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
