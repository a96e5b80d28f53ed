package mirror

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/ssh"
)

// ErrMirrorClosed is returned by Mirror.Run after Close.
var ErrMirrorClosed = errors.New("mirror: closed")

// Config configures a Mirror.
type Config struct {
	// Home is the mirror's home directory; the mirror key is written to
	// <home>/shared/config/mirror_ed25519 on the first start. Required.
	Home string
	// DB holds the mirror's durable state (id, setup, registration, pinned host
	// keys, sync state) in buckets under "gitfleet.mirror.node". Required.
	DB *bolt.DB
	// Setup is applied on the first start and checked on later ones.
	Setup SetupConfig
	// Repos is the mirror's own storage, which sync fills and sshserve serves.
	// Nil means registration only: nothing is synced.
	Repos mesh.Repos
	// RootCAs verifies the upstream's HTTPS certificate. Nil means the system
	// roots, which honour SSL_CERT_FILE and SSL_CERT_DIR. There is no way to
	// turn verification off.
	RootCAs *x509.CertPool
	// SetupTimeout bounds the first start's HTTPS check of the upstream. Zero
	// means 30 seconds.
	SetupTimeout time.Duration
	// PollInterval is the shortest interval between registration state polls
	// while the mirror is pending (each such poll waits at the upstream, up to
	// EventWait, for an administrator's decision, so an approval takes effect at
	// once), and the first delay after a failure, which doubles up to
	// MaxPollInterval while the upstream fails. Zero means 2 seconds.
	PollInterval time.Duration
	// MaxPollInterval caps the poll delay, and is how often an accepted mirror
	// re-reads its state. Zero means 1 minute.
	MaxPollInterval time.Duration
	// SyncInterval is the period of the full reconcile that compares refs
	// hashes (plugin.mirroring.synchronization.interval). Zero means 3 minutes.
	SyncInterval time.Duration
	// Workers bounds concurrent fetches. Zero means 4.
	Workers int
	// FetchTimeout bounds one repository fetch. Zero means 10 minutes.
	FetchTimeout time.Duration
	// EventWait is the long-poll wait asked of the upstream's change feed and,
	// while pending, of its state. Zero means 30 seconds.
	EventWait time.Duration
	// CheckTimeout bounds each check of Diagnose. Zero means 10 seconds.
	CheckTimeout time.Duration
	// FetchProgress, when set, is called as a repository fetch receives data
	// (from the fetch's goroutine; keep it quick).
	FetchProgress func(project, slug string, p mesh.FetchProgress)
	// AuthCache tunes the cache of the upstream's read-access answers.
	AuthCache AuthCacheConfig
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives progress and errors. Nil discards.
	Logger *slog.Logger
}

// Mirror is the mirror side of smart mirroring: it registers with the upstream,
// waits for approval, pins the upstream's SSH host keys, and (with Repos) keeps
// its repositories in sync. Open it, call Run, and Close it when done.
type Mirror struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	ident  *identity
	signer ssh.Signer
	keyPEM []byte
	api    *apiClient
	auth   *authCache

	pollNow chan struct{} // asks the registration loop to poll at once

	mu      sync.Mutex
	reg     registration
	lastErr string
	contact time.Time
	running bool
	sync    *syncer
	closed  bool
	closeCh chan struct{}
	runDone chan struct{}
}

// Open applies the setup on the mirror's first start (after checking that the
// upstream answers over HTTPS with a trusted certificate, then generating the
// mirror id and Ed25519 key), or checks it against the stored setup on later
// starts: a changed base URL or upstream URL is a *SetupChangedError. It does
// not contact the upstream on later starts.
func Open(ctx context.Context, cfg Config) (*Mirror, error) {
	if cfg.DB == nil || cfg.Home == "" {
		return nil, errors.New("mirror: Config.DB and Config.Home are required")
	}
	m := &Mirror{cfg: cfg, log: cfg.Logger, now: cfg.Now, pollNow: make(chan struct{}, 1),
		closeCh: make(chan struct{}), runDone: make(chan struct{})}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	timeout := cfg.SetupTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	check := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return CheckHTTPS(ctx, cfg.Setup.UpstreamURL, cfg.RootCAs, m.now)
	}
	ident, signer, first, err := setupIdentity(ctx, cfg.DB, cfg.Home, cfg.Setup, check, m.now())
	if err != nil {
		return nil, err
	}
	if !first && ident.Setup.DisplayName != cfg.Setup.DisplayName && cfg.Setup.DisplayName != "" {
		m.log.Info("setup.displayName is applied on the first start only; keeping the stored name",
			"stored", ident.Setup.DisplayName, "given", cfg.Setup.DisplayName)
	}
	m.ident, m.signer = ident, signer
	m.auth = &authCache{cfg: cfg.AuthCache}
	if m.keyPEM, err = os.ReadFile(ident.KeyFile); err != nil {
		return nil, fmt.Errorf("mirror: read key: %w", err)
	}
	m.reg, err = loadRegistration(cfg.DB)
	if err != nil {
		return nil, err
	}
	m.api = &apiClient{base: trimSlash(ident.Setup.UpstreamURL), id: ident.ID, signer: signer,
		http: newHTTPClient(cfg.RootCAs, m.now, 0), now: m.now}
	if first {
		m.log.Info("mirror set up", "id", ident.ID, "baseUrl", ident.Setup.BaseURL, "upstream", ident.Setup.UpstreamURL)
	}
	return m, nil
}

// ID returns the mirror's id.
func (m *Mirror) ID() string { return m.ident.ID }

// PublicKey returns the mirror's public key.
func (m *Mirror) PublicKey() ssh.PublicKey { return m.signer.PublicKey() }

// Run registers the mirror, follows its registration state and, once accepted,
// keeps its repositories in sync, until ctx ends or Close is called. It returns
// ctx.Err() or ErrMirrorClosed. Call it once.
func (m *Mirror) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrMirrorClosed
	}
	if m.running {
		m.mu.Unlock()
		return errors.New("mirror: Run called twice")
	}
	m.running = true
	m.mu.Unlock()
	defer close(m.runDone)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.closeCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := m.registrationLoop(ctx)
	m.stopSync()
	select {
	case <-m.closeCh:
		return ErrMirrorClosed
	default:
	}
	return err
}

// Close stops Run and waits for it. It is safe to call twice.
func (m *Mirror) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	running := m.running
	close(m.closeCh)
	m.mu.Unlock()
	if running {
		<-m.runDone
	}
	m.api.http.CloseIdleConnections()
	return nil
}

// setError records err as the last error (nil clears it).
func (m *Mirror) setError(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		m.lastErr = ""
		return
	}
	m.lastErr = err.Error()
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// sleep waits d or until ctx ends or a poll is asked for.
func (m *Mirror) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-m.pollNow:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// askPoll asks the registration loop to poll the state now.
func (m *Mirror) askPoll() {
	select {
	case m.pollNow <- struct{}{}:
	default:
	}
}
