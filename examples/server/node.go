package main

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
	"time"

	"github.com/gitfleet/gitfleet/internal/gitexec"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// drainTimeout bounds the drain of SSH sessions and HTTP requests at shutdown.
const drainTimeout = 60 * time.Second

// runNode starts the node in the order /status reports, serves until ctx ends,
// then drains and stops everything.
func runNode(ctx context.Context, o options, logger *slog.Logger, stdout io.Writer) (err error) {
	l := homeLayout(o.home)
	if err := l.create(); err != nil {
		return err
	}
	_, cfg, err := loadConfig(ctx, o.home, logger)
	if err != nil {
		return err
	}
	if cfg.Mode == props.ModeMirror {
		return runMirrorNode(ctx, o, l, cfg, logger, stdout)
	}
	logger.Info("starting primary", "home", o.home, "version", version)

	a, stopBase, err := startBase(ctx, l, cfg, logger)
	if err != nil {
		return err
	}
	defer stopBase()
	a.sshBase = cfg.SSHBaseURL()
	firstStart, generated, err := a.ensureAdmin(adminSetup{
		Username: cfg.Setup.Sysadmin.Username, Password: cfg.Setup.Sysadmin.Password,
	}, l.Config)
	if err != nil {
		return err
	}

	if err := a.removeUnrecorded(ctx); err != nil {
		return err
	}

	hostKeys, err := sshserve.LoadOrCreateHostKeys(l.Config)
	if err != nil {
		return err
	}
	up, err := mirror.NewUpstream(mirror.UpstreamConfig{
		State:       mirror.NewBoltState(a.db),
		Admin:       a.checkAdmin,
		SSHBaseURL:  a.sshBase,
		SSHHostKeys: publicKeys(hostKeys),
		Repos:       a.repos,
		ReadAccess:  a.readAccess,
		Logger:      logger.With("component", "mirroring"),
	})
	if err != nil {
		return err
	}
	defer up.Close()
	a.upstream = up
	a.setHandler(a.routes())

	sshSrv := newSSHServer(cfg, hostKeys, a.repos, logger)
	// Accepted mirrors read their projects; everyone else is the database's.
	sshSrv.PublicKeyCallback = up.PublicKeyCallback(a.principalFor)
	sshSrv.Authorizer = up.Authorizer(a.authorize)
	sshDone, err := serveSSH(ctx, sshSrv, cfg, logger)
	if err != nil {
		return err
	}
	a.status.ready("ssh")
	logger.Info("node running", "http", httpURL(cfg), "ssh", a.sshBase)
	if firstStart {
		printFirstSteps(stdout, cfg, a.adminUser(), generated, l)
	}

	<-ctx.Done()
	logger.Info("shutting down: draining SSH sessions and HTTP requests", "deadline", drainTimeout)
	a.status.stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	if err := sshSrv.Shutdown(sctx); err != nil {
		logger.Warn("SSH drain incomplete", "err", err)
	}
	<-sshDone
	return nil
}

// startBase starts what a primary and a mirror share, in the order /status
// reports: HTTP (answering /status at once), then the database, then the mesh
// sidecar. stop undoes it in reverse order.
func startBase(ctx context.Context, l layout, cfg *props.Config, logger *slog.Logger) (a *app, stop func(), err error) {
	a = &app{log: logger, now: time.Now, status: newNodeStatus("database", "mesh", "ssh")}
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	httpSrv, httpDone, err := startHTTP(ctx, cfg, a, logger)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
		defer cancel()
		httpSrv.Shutdown(sctx)
		<-httpDone
	})
	if _, err := gitexec.CheckVersion(ctx); err != nil {
		return nil, nil, err
	}
	db, err := openDB(l.DB)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() { db.Close() })
	a.db = db
	a.status.ready("database")
	m, err := startMesh(ctx, l, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, m.stop)
	a.repos, a.meshState = m.repos, m.state
	a.status.ready("mesh")
	return a, stop, nil
}

func publicKeys(signers []ssh.Signer) []ssh.PublicKey {
	out := make([]ssh.PublicKey, len(signers))
	for i, s := range signers {
		out[i] = s.PublicKey()
	}
	return out
}

// newSSHServer configures the SSH server from the properties.
func newSSHServer(cfg *props.Config, hostKeys []ssh.Signer, backend sshserve.GitBackend, logger *slog.Logger) *sshserve.Server {
	srv := &sshserve.Server{
		HostKeys:             hostKeys,
		Backend:              backend,
		Logger:               logger.With("component", "ssh"),
		DisabledCiphers:      cfg.SSH.DisabledCiphers,
		DisabledKeyExchanges: cfg.SSH.DisabledKeyExchanges,
		DisabledMACs:         cfg.SSH.DisabledMACs,
		ProxyProtocol:        cfg.SSH.ProxyProtocol,
		ProxyTrusted:         cfg.SSH.ProxyTrusted,
	}
	return srv
}

// serveSSH listens on plugin.ssh.port and serves in the background; the returned
// channel is closed when Serve has returned.
func serveSSH(ctx context.Context, srv *sshserve.Server, cfg *props.Config, logger *slog.Logger) (<-chan struct{}, error) {
	addr := net.JoinHostPort(cfg.Server.Address, strconv.Itoa(cfg.SSH.Port))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("SSH: listen on %s (plugin.ssh.port): %w", addr, err)
	}
	logger.Info("SSH listening", "addr", ln.Addr().String(), "proxyProtocol", cfg.SSH.ProxyProtocol.String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, sshserve.ErrServerClosed) {
			logger.Error("SSH server failed", "err", err)
		}
	}()
	return done, nil
}

// startHTTP listens on server.address:server.port (with TLS when
// server.ssl.enabled) and serves a's handler; until setHandler installs the REST
// API only /status answers.
func startHTTP(ctx context.Context, cfg *props.Config, a *app, logger *slog.Logger) (*http.Server, <-chan struct{}, error) {
	addr := net.JoinHostPort(cfg.Server.Address, strconv.Itoa(cfg.Server.Port))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("HTTP: listen on %s (server.port): %w", addr, err)
	}
	early := http.NewServeMux()
	early.HandleFunc("GET /status", a.handleStatus)
	a.setHandler(early)
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if cfg.Server.SSL.Enabled {
		cert, err := tls.LoadX509KeyPair(cfg.Server.SSL.Certificate, cfg.Server.SSL.CertificatePrivateKey)
		if err != nil {
			ln.Close()
			return nil, nil, fmt.Errorf("HTTPS: load server.ssl.certificate and server.ssl.certificate-private-key: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	} else {
		logger.Warn("serving plain HTTP: fine for local use, but mirroring needs HTTPS (set server.ssl.enabled=true with a certificate)")
	}
	logger.Info("HTTP listening", "addr", ln.Addr().String(), "url", httpURL(cfg))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed", "err", err)
		}
	}()
	return srv, done, nil
}

// httpURL is the URL the node's HTTP API is reachable at.
func httpURL(cfg *props.Config) string { return cfg.PublicBaseURL() }

// removeUnrecorded deletes store repositories that the database does not know: a
// creation that crashed before it was recorded.
func (a *app) removeUnrecorded(ctx context.Context) error {
	stored, err := a.repos.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range stored {
		if _, err := a.getRepo(r.Project, r.Slug); err == nil {
			continue
		}
		a.log.Warn("removing a repository that was never recorded (creation interrupted)", "project", r.Project, "slug", r.Slug)
		if err := a.repos.Delete(ctx, r.Project, r.Slug); err != nil {
			return err
		}
	}
	return nil
}
