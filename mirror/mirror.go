package mirror

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
	"golang.org/x/crypto/ssh"
)

// ErrMirrorClosed is returned by Mirror.Run after Shutdown or Close, as
// net/http's ErrServerClosed is returned by Serve.
var ErrMirrorClosed = errors.New("mirror: closed")

// Config configures a Mirror.
type Config struct {
	// State holds the mirror's durable state: its id, setup, registration,
	// pinned host keys and sync state. NewBoltState(db) keeps it in the node's
	// bbolt database. Required.
	State MirrorState
	// Key is the mirror key, which signs API calls and authenticates fetches.
	// LoadOrCreateKey(home) keeps it in <home>/shared/config/mirror_ed25519.
	// Later starts must bring the key of the first start. Required.
	Key *Key
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
	// LFSCheckInterval is how often a reconcile also checks, for every
	// repository whose refs match the upstream's, that the mirror holds the Git
	// LFS object of every reachable pointer, fetching what is missing
	// (mesh.FetchOptions.LFSAll). Zero means 1 hour; negative turns the check off.
	LFSCheckInterval time.Duration
	// JoinToken, when set, is a farm's join token (see JoinToken): the mirror
	// registers as a node of that farm and is accepted at once, with the farm's
	// projects (plugin.mirroring.farm.join-token). It is sent at registration
	// and not stored.
	JoinToken string
	// FreshnessWait is how long a read may wait for the mirror to catch up
	// with the upstream's refs before it is served from the upstream (see
	// Mirror.GitBackend). Zero means DefaultFreshnessWait (5 s); negative turns
	// the check off: reads are served as the mirror has the repository.
	FreshnessWait time.Duration
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
// its repositories in sync. Open it, call Run, and Shutdown or Close it when
// done.
type Mirror struct {
	cfg   Config
	log   *slog.Logger
	fresh freshness // see GitBackend
	now   func() time.Time
	ident Identity
	api   *apiClient
	auth  *authCache

	pollNow chan struct{} // asks the registration loop to poll at once

	// regMu serialises changes to the registration that read it first
	// (updateRegistration), so that a poll's update and TrustHostKeys never
	// overwrite each other.
	regMu   sync.Mutex
	mu      sync.Mutex
	reg     Registration
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
// mirror id), or checks it against the stored setup on later starts: a changed
// base URL or upstream URL is a *SetupChangedError, and a key other than the
// first start's is refused. It does not contact the upstream on later starts,
// and writes no file: its only writes go to cfg.State.
func Open(ctx context.Context, cfg Config) (*Mirror, error) {
	if cfg.State == nil || cfg.Key == nil || cfg.Key.Signer == nil {
		return nil, errors.New("mirror: Config.State and Config.Key are required")
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
	ident, first, err := setupIdentity(ctx, cfg.State, cfg.Key, cfg.Setup, check, m.now())
	if err != nil {
		return nil, err
	}
	if !first && ident.Setup.DisplayName != cfg.Setup.DisplayName && cfg.Setup.DisplayName != "" {
		m.log.Info("setup.displayName is applied on the first start only; keeping the stored name",
			"stored", ident.Setup.DisplayName, "given", cfg.Setup.DisplayName)
	}
	m.ident = ident
	m.auth = &authCache{cfg: cfg.AuthCache}
	if m.reg, err = loadRegistration(ctx, cfg.State); err != nil {
		return nil, err
	}
	m.api = &apiClient{base: trimSlash(ident.Setup.UpstreamURL), id: ident.ID, signer: cfg.Key.Signer,
		http: newHTTPClient(cfg.RootCAs, m.now, 0), now: m.now}
	if first {
		m.log.Info("mirror set up", "id", ident.ID, "baseUrl", ident.Setup.BaseURL, "upstream", ident.Setup.UpstreamURL)
	}
	return m, nil
}

// ID returns the mirror's id.
func (m *Mirror) ID() string { return m.ident.ID }

// PublicKey returns the mirror's public key.
func (m *Mirror) PublicKey() ssh.PublicKey { return m.cfg.Key.PublicKey() }

// Run registers the mirror, follows its registration state and, once accepted,
// keeps its repositories in sync, until ctx ends or Shutdown or Close is called.
// It returns ctx.Err() or ErrMirrorClosed. Call it once.
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

// Shutdown stops Run and waits for it to return, or for ctx to end, in which
// case it returns ctx.Err() and Run still ends soon after. Fetches in flight are
// cancelled: each is applied atomically, so nothing is half-synced, and the next
// start fetches again. It is safe to call more than once, and with Close.
func (m *Mirror) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.closeCh)
	}
	running := m.running
	m.mu.Unlock()
	if running {
		select {
		case <-m.runDone:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.api.http.CloseIdleConnections()
	return nil
}

// Close stops Run and waits for it. It is safe to call twice.
func (m *Mirror) Close() error {
	return m.Shutdown(context.Background())
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
