package mirror

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
	"golang.org/x/crypto/ssh"
)

// UpstreamConfig configures an Upstream.
type UpstreamConfig struct {
	// State holds the upstream's durable state: registrations, decisions,
	// projects, removed mirrors, recent nonces and the change feed's sequence
	// number. NewBoltState(db) keeps it in the node's bbolt database. Required.
	State UpstreamState
	// KeyPolicy says which keys mirrors may register; the zero value is
	// gitfleet's default (Ed25519, ECDSA, their sk- variants, RSA >= 2048).
	KeyPolicy gitfleet.KeyPolicy
	// Admin reports whether a request comes from an administrator. Nil refuses
	// every administrative call.
	Admin func(r *http.Request) bool
	// SSHBaseURL is where mirrors fetch from, e.g. ssh://git.example.com:7999. It
	// is sent to accepted mirrors.
	SSHBaseURL string
	// SSHHostKeys are the primary's SSH host keys, sent to accepted mirrors,
	// which pin them.
	SSHHostKeys []ssh.PublicKey
	// RootCAs verifies mirrors' HTTPS certificates when accepting them. Nil means
	// the system roots (which honour SSL_CERT_FILE).
	RootCAs *x509.CertPool
	// AcceptCheckTimeout bounds the HTTPS check of a mirror's base URL when
	// accepting it. Zero means 15 seconds.
	AcceptCheckTimeout time.Duration
	// Repos is the primary's storage, for the repository list and change feed.
	// Nil serves empty lists and no events.
	Repos mesh.Repos
	// ReadAccess answers a mirror's question whether the user owning key may read
	// the repository project/slug, naming the user. Nil refuses every user.
	ReadAccess func(ctx context.Context, key ssh.PublicKey, project, slug string) (user string, allowed bool, err error)
	// FeedSize is how many events the change feed holds; older cursors are told
	// to resync. Zero means 10,000.
	FeedSize int
	// MaxPendingPerAddress and MaxPending bound the registrations waiting for
	// approval from one address and in all; a registration past either is
	// refused with 429 and Retry-After. Zero means DefaultMaxPendingPerAddress
	// (5) and DefaultMaxPending (100); negative means no bound.
	MaxPendingPerAddress, MaxPending int
	// PendingExpiry is how long a registration may wait for approval before it
	// is removed; zero means DefaultPendingExpiry (7 days).
	PendingExpiry time.Duration
	// RemovedRetention is how long the records of removed mirrors are kept
	// (their ids cannot register again meanwhile); zero means
	// DefaultRemovedRetention (30 days). An administrator may purge them at
	// once: DELETE /mirrorServers/removed.
	RemovedRetention time.Duration
	// MaxWait bounds a long poll (change feed or a pending mirror's state). Zero
	// means 60 seconds.
	MaxWait time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives the details that clients are not told. Nil discards.
	Logger *slog.Logger
}

// Upstream is the primary's side of smart mirroring: an http.Handler serving the
// mirror API under /rest/mirroring/1.0, and the lookup the primary's SSH server
// uses to give accepted mirrors read access to their projects. Create it with
// NewUpstream; its methods are safe for concurrent use.
type Upstream struct {
	cfg    UpstreamConfig
	state  UpstreamState
	log    *slog.Logger
	now    func() time.Time
	mux    *http.ServeMux
	client *http.Client

	feed     *feed
	contacts contacts // each mirror's last signed request and feed position

	regMu     sync.Mutex // serialises the admission of new registrations
	lastPurge time.Time  // of removed records past RemovedRetention

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewUpstream starts a fresh change-feed window in cfg.State (see the package
// documentation) and, when cfg.Repos is set, starts following its events. Call
// Close to stop.
func NewUpstream(cfg UpstreamConfig) (*Upstream, error) {
	if cfg.State == nil {
		return nil, errors.New("mirror: UpstreamConfig.State is required")
	}
	u := &Upstream{cfg: cfg, state: cfg.State, log: cfg.Logger, now: cfg.Now}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.now == nil {
		u.now = time.Now
	}
	u.client = newHTTPClient(cfg.RootCAs, u.now, 0)
	u.ctx, u.cancel = context.WithCancel(context.Background())
	var err error
	if u.feed, err = newFeed(u.ctx, u.state, cfg.FeedSize, u.now); err != nil {
		u.cancel()
		return nil, err
	}
	u.routes()
	if cfg.Repos != nil {
		events, err := cfg.Repos.Subscribe(u.ctx)
		if err != nil {
			u.cancel()
			return nil, fmt.Errorf("mirror: subscribe to repository events: %w", err)
		}
		u.wg.Add(1)
		go u.follow(events)
	}
	return u, nil
}

// Close stops following repository events, ends pending long polls and waits for
// its goroutines. It does not close its State. It is safe to call twice.
func (u *Upstream) Close() error {
	u.once.Do(func() {
		u.cancel()
		u.feed.close()
		u.wg.Wait()
		u.client.CloseIdleConnections()
	})
	return nil
}

func (u *Upstream) routes() {
	m := http.NewServeMux()
	p := APIPrefix
	m.HandleFunc("POST "+p+"/mirrorServers", u.handleRegister)
	m.HandleFunc("GET "+p+"/mirrorServers", u.admin(u.handleList))
	m.HandleFunc("GET "+p+"/mirrorServers/{id}", u.admin(u.handleGet))
	m.HandleFunc("DELETE "+p+"/mirrorServers/{id}", u.admin(u.handleDelete))
	m.HandleFunc("DELETE "+p+"/mirrorServers/removed", u.admin(u.handlePurgeRemoved))
	m.HandleFunc("POST "+p+"/mirrorServers/{id}/accept", u.admin(u.handleAccept))
	m.HandleFunc("POST "+p+"/mirrorServers/{id}/reject", u.admin(u.handleReject))
	m.HandleFunc("POST "+p+"/mirrorServers/{id}/join-token", u.admin(u.handleJoinToken))
	m.HandleFunc("GET "+p+"/mirrorServers/{id}/nodes", u.admin(u.handleNodes))
	m.HandleFunc("PUT "+p+"/mirrorServers/{id}/projects/{key}", u.admin(u.handleAddProject))
	m.HandleFunc("DELETE "+p+"/mirrorServers/{id}/projects/{key}", u.admin(u.handleRemoveProject))
	m.HandleFunc("POST "+p+"/mirrorServers/{id}/all-projects", u.admin(u.handleAllProjects))
	m.HandleFunc("GET "+p+"/mirrorServers/{id}/state", u.handleState)
	m.HandleFunc("GET "+p+"/repos", u.signed(u.handleRepos))
	m.HandleFunc("GET "+p+"/repos/{project}/{slug}/refs-hash", u.signed(u.handleRefsHash))
	m.HandleFunc("GET "+p+"/events", u.signed(u.handleEvents))
	m.HandleFunc("POST "+p+"/authenticate", u.signed(u.handleAuthenticate))
	m.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	u.mux = m
}

// ServeHTTP serves the mirror API. Paths outside /rest/mirroring/1.0 are 404.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != APIPrefix && !strings.HasPrefix(r.URL.Path, APIPrefix+"/") {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
		return
	}
	u.mux.ServeHTTP(w, r)
}

// admin wraps an administrative handler with the primary's admin check.
func (u *Upstream) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if u.cfg.Admin == nil || !u.cfg.Admin(r) {
			writeError(w, http.StatusForbidden, "forbidden", "administrator access required")
			return
		}
		h(w, r)
	}
}

// readBody reads a bounded request body.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, errors.New("request body too large")
	}
	return body, nil
}

// signedHandler handles a verified request of an accepted mirror.
type signedHandler func(w http.ResponseWriter, r *http.Request, rec *MirrorRecord, body []byte)

// authenticate verifies the signature of r (body already read) against the key of
// the mirror named in its headers. It returns the live record, or the record of a
// removed mirror with removed set, and records the nonce.
func (u *Upstream) authenticate(r *http.Request, body []byte) (rec *MirrorRecord, removed bool, err error) {
	h, err := parseSignedHeaders(r)
	if err != nil {
		return nil, false, err
	}
	rec, removed, err = u.state.Mirror(r.Context(), h.id)
	if isNotFound(err) {
		return nil, false, ErrUnknownMirror
	}
	if err != nil {
		return nil, false, err
	}
	pub, err := parseAuthorizedKey(rec.PublicKey, u.cfg.KeyPolicy)
	if err != nil {
		return nil, false, err
	}
	now := u.now()
	if err := h.verify(pub, r.Method, r.RequestURI, body, now); err != nil {
		return nil, false, err
	}
	if err := u.useNonce(r.Context(), h, now); err != nil {
		return nil, false, err
	}
	return rec, removed, nil
}

// useNonce records the nonce of a verified request, and fails with ErrReplay
// when it was used before. Nonces older than twice the skew are forgotten: a
// request that old is refused by the clock check alone.
func (u *Upstream) useNonce(ctx context.Context, h signedHeaders, now time.Time) error {
	return u.state.UseNonce(ctx, h.id, h.timestamp, h.nonce, now.Add(-2*MaxSkew).Unix())
}

// refuse answers a failed signature check with 401 and logs the reason.
func (u *Upstream) refuse(w http.ResponseWriter, r *http.Request, err error) {
	u.log.Warn("mirror request refused", "path", r.URL.Path, "mirror", r.Header.Get(HeaderMirror),
		"remote", r.RemoteAddr, "err", err)
	writeError(w, http.StatusUnauthorized, "unauthorized", "request signature refused")
}

// signed wraps a handler for accepted mirrors: the request must be signed by a
// live mirror, and that mirror must be accepted.
func (u *Upstream) signed(h signedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		rec, removed, err := u.authenticate(r, body)
		if err == nil && removed {
			err = ErrUnknownMirror
		}
		if err != nil {
			u.refuse(w, r, err)
			return
		}
		if rec.State != StateAccepted {
			writeError(w, http.StatusForbidden, "not_accepted", "mirror is not accepted")
			return
		}
		u.contacts.saw(rec.ID, u.now())
		h(w, r, rec, body)
	}
}

// handleState answers GET /mirrorServers/{id}/state for the signed mirror id.
// awaitState waits, up to wait (bounded by MaxWait), for the state of mirror id to
// differ from known, and returns its record then or at the deadline; nil and
// removed when the mirror was removed meanwhile, nil alone on a read error.
func (u *Upstream) awaitState(ctx context.Context, id string, known State, wait time.Duration) (rec *MirrorRecord, removed bool) {
	maxWait := u.cfg.MaxWait
	if maxWait <= 0 {
		maxWait = time.Minute
	}
	timer := time.NewTimer(min(wait, maxWait))
	defer timer.Stop()
	for {
		// Take the change channel before reading, so a change in between wakes us.
		changed := u.feed.changes()
		cur, err := u.liveRecord(ctx, id)
		if isNotFound(err) {
			return nil, true
		}
		if err != nil {
			return nil, false
		}
		if cur.State != known {
			return cur, false
		}
		select {
		case <-changed:
			if u.ctx.Err() == nil {
				continue
			}
		case <-timer.C:
		case <-ctx.Done():
		}
		return cur, false
	}
}

func (u *Upstream) handleState(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if r.Header.Get(HeaderMirror) != r.PathValue("id") {
		u.refuse(w, r, errors.New("signing mirror differs from the mirror in the path"))
		return
	}
	rec, removed, err := u.authenticate(r, body)
	switch {
	case errors.Is(err, ErrUnknownMirror):
		writeError(w, http.StatusNotFound, "not_found", "no such mirror")
		return
	case err != nil:
		u.refuse(w, r, err)
		return
	case removed:
		writeError(w, http.StatusNotFound, "removed", "mirror was removed")
		return
	}
	// A long poll: ?state=PENDING&wait=25s answers as soon as the state differs
	// from the mirror's, so an approval reaches the mirror at once.
	q := r.URL.Query()
	if known := q.Get("state"); known != "" && !removed && rec.State == State(known) {
		wait, err := time.ParseDuration(q.Get("wait"))
		if err != nil || wait < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "wait must be a duration such as 25s when state is given")
			return
		}
		if rec, removed = u.awaitState(r.Context(), rec.ID, State(known), wait); rec == nil {
			if removed {
				writeError(w, http.StatusNotFound, "removed", "mirror was removed")
			} else {
				u.internal(w, r, errors.New("mirror record unreadable during a state poll"))
			}
			return
		}
	}
	reply := StateReply{State: rec.State, Farm: rec.Farm}
	if rec.State == StateAccepted {
		reply.MirroringMode = rec.Mode
		reply.Projects = rec.Projects
		reply.SSHBaseURL = u.cfg.SSHBaseURL
		for _, k := range u.cfg.SSHHostKeys {
			reply.SSHHostKeys = append(reply.SSHHostKeys, authorizedLine(k))
		}
	}
	writeJSON(w, http.StatusOK, reply)
}
