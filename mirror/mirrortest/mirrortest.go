// Package mirrortest runs the pieces of smart mirroring on loopback for tests: a
// primary's mirror API over HTTPS with a throwaway CA, mirrors set up against it,
// and helpers for the administrator's calls.
//
// Typical usage:
//
//	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
//	m := p.NewMirror(t, mirrortest.MirrorOptions{})
//	mirrortest.Run(t, m)
//	mirrortest.WaitState(t, m, mirror.StatePending)
//	p.Accept(t, m.ID(), mirror.ModeSelectedProjects, "PROJ")
package mirrortest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/sshserve"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/ssh"
)

// AdminHeader is the header whose value AdminToken makes a request an
// administrator's in the test primary.
const AdminHeader = "X-Test-Admin"

// AdminToken is the administrator credential of the test primary.
const AdminToken = "let-me-in"

// OpenDB opens a bbolt database at path, closed at test end.
func OpenDB(t testing.TB, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// PrimaryOptions configures StartPrimary.
type PrimaryOptions struct {
	CA *testutil.CA // nil: a new CA
	// Storage starts the primary's own mesh.Store and SSH server (users added
	// with AddUser, mirrors recognised through Upstream.MirrorKey). Repos,
	// SSHBaseURL, SSHHostKeys and ReadAccess are then ignored.
	Storage     bool
	Repos       mesh.Repos      // the primary's storage, for sync tests
	SSHBaseURL  string          // empty: ssh://127.0.0.1:1
	SSHHostKeys []ssh.PublicKey // empty: one generated Ed25519 key
	ReadAccess  func(ctx context.Context, key ssh.PublicKey, project, slug string) (string, bool, error)
	Now         func() time.Time // nil: time.Now
	MaxWait     time.Duration
	FeedSize    int
	// State is the Upstream's state; nil means bbolt in the primary home's
	// database (Primary.DB).
	State mirror.UpstreamState
	// Configure, when set, changes the Upstream's configuration before it starts.
	Configure func(*mirror.UpstreamConfig)
}

// Primary is a primary's mirror API served over HTTPS on loopback.
type Primary struct {
	CA       *testutil.CA
	Home     testutil.Home
	DB       *bolt.DB // nil when PrimaryOptions.State was given
	State    mirror.UpstreamState
	Upstream *mirror.Upstream
	Server   *httptest.Server
	URL      string        // https://127.0.0.1:PORT
	HostKey  *testutil.Key // the SSH host key sent to mirrors, when generated here
	client   *http.Client

	// With Storage:
	Store       *mesh.Store
	SSH         *sshserve.Server
	SSHPort     int
	KnownHosts  string // a known_hosts file trusting the primary's SSH server
	users       *users
	seeder      *User
	sshListener net.Listener

	upCfg    mirror.UpstreamConfig
	leaf     *testutil.Leaf
	httpAddr string
	storage  bool
	mu       sync.Mutex
	live     *liveServers
}

// StartPrimary starts a primary's mirror API; it is stopped at test end.
func StartPrimary(t testing.TB, opts PrimaryOptions) *Primary {
	t.Helper()
	ca := opts.CA
	if ca == nil {
		ca = testutil.NewCA(t, "gitfleet test CA")
	}
	p := &Primary{CA: ca, Home: testutil.NewHome(t), State: opts.State}
	if p.State == nil {
		p.DB = OpenDB(t, p.Home.DB)
		p.State = mirror.NewBoltState(p.DB)
	}
	if opts.Storage {
		p.openStore(t)
		opts.Repos = p.Store
		opts.SSHBaseURL = fmt.Sprintf("ssh://127.0.0.1:%d", p.SSHPort)
		opts.SSHHostKeys = []ssh.PublicKey{p.HostKey.Public}
		opts.ReadAccess = p.readAccess
	}
	keys := opts.SSHHostKeys
	if len(keys) == 0 {
		p.HostKey = testutil.GenerateKey(t, testutil.Ed25519)
		keys = []ssh.PublicKey{p.HostKey.Public}
	}
	base := opts.SSHBaseURL
	if base == "" {
		base = "ssh://127.0.0.1:1"
	}
	p.upCfg = mirror.UpstreamConfig{
		State:              p.State,
		Admin:              func(r *http.Request) bool { return r.Header.Get(AdminHeader) == AdminToken },
		SSHBaseURL:         base,
		SSHHostKeys:        keys,
		RootCAs:            ca.Pool,
		AcceptCheckTimeout: 5 * time.Second,
		Repos:              opts.Repos,
		ReadAccess:         opts.ReadAccess,
		Now:                opts.Now,
		MaxWait:            opts.MaxWait,
		FeedSize:           opts.FeedSize,
	}
	if opts.Configure != nil {
		opts.Configure(&p.upCfg)
	}
	p.leaf = ca.Issue(t, testutil.LeafOptions{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.httpAddr = l.Addr().String()
	p.URL = "https://" + p.httpAddr
	p.storage = opts.Storage
	p.start(t, l)
	t.Cleanup(p.Kill)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}
	p.client = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	return p
}

// Do sends an administrator's request (admin true) or an anonymous one to the
// mirror API and decodes a JSON reply into out when out is not nil. It returns
// the status and the raw body.
func (p *Primary) Do(t testing.TB, admin bool, method, path string, in, out any) (int, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, p.URL+mirror.APIPrefix+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if admin {
		req.Header.Set(AdminHeader, AdminToken)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, data
}

// Accept accepts mirror id with mode and projects and fails the test unless
// the upstream answers 200.
func (p *Primary) Accept(t testing.TB, id string, mode mirror.Mode, projects ...string) {
	t.Helper()
	status, body := p.Do(t, true, http.MethodPost, "/mirrorServers/"+id+"/accept",
		mirror.AcceptRequest{MirroringMode: mode, Projects: projects}, nil)
	if status != http.StatusOK {
		t.Fatalf("accept %s: %d %s", id, status, body)
	}
}

// StartSite serves a mirror's own HTTPS base URL with a certificate from ca
// (leaf options as given) and returns its URL.
func StartSite(t testing.TB, ca *testutil.CA, opts testutil.LeafOptions) string {
	t.Helper()
	s := testutil.StartTLSServer(t, ca.Issue(t, opts), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	return s.URL
}

// MirrorOptions configures Primary.NewMirror.
type MirrorOptions struct {
	Home    *testutil.Home // nil: a new home
	BaseURL string         // empty: a new site with a valid certificate
	Name    string         // empty: "mirror"
	Repos   mesh.Repos
	Now     func() time.Time
	// Configure adjusts the config before Open.
	Configure func(*mirror.Config)
}

// MirrorConfig returns the config NewMirror would open, without its State and
// Key unless Configure sets them.
func (p *Primary) MirrorConfig(t testing.TB, opts MirrorOptions) (mirror.Config, testutil.Home) {
	t.Helper()
	var home testutil.Home
	if opts.Home != nil {
		home = *opts.Home
	} else {
		home = testutil.NewHome(t)
	}
	base := opts.BaseURL
	if base == "" {
		base = StartSite(t, p.CA, testutil.LeafOptions{})
	}
	name := opts.Name
	if name == "" {
		name = "mirror"
	}
	cfg := mirror.Config{
		Setup:           mirror.SetupConfig{DisplayName: name, BaseURL: base, UpstreamURL: p.URL, UpstreamType: "server"},
		Repos:           opts.Repos,
		RootCAs:         p.CA.Pool,
		PollInterval:    20 * time.Millisecond,
		MaxPollInterval: 200 * time.Millisecond,
		Now:             opts.Now,
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	return cfg, home
}

// NewMirror opens a mirror set up against the primary (its state is the
// home's gitfleet.db and its key the home's mirror key, created at the first
// start, unless Configure set others); it is closed at test end. Start it with
// Run.
func (p *Primary) NewMirror(t testing.TB, opts MirrorOptions) *mirror.Mirror {
	t.Helper()
	cfg, home := p.MirrorConfig(t, opts)
	if cfg.State == nil {
		cfg.State = mirror.NewBoltState(OpenDB(t, home.DB))
	}
	if cfg.Key == nil {
		cfg.Key = MirrorKey(t, home)
	}
	m, err := mirror.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open mirror: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// MirrorKey loads (or creates) the mirror key of home, as a mirror node does
// before Open.
func MirrorKey(t testing.TB, home testutil.Home) *mirror.Key {
	t.Helper()
	k, err := mirror.LoadOrCreateKey(gitfleet.Home(home.Dir))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Run runs m in the background until the test ends.
func Run(t testing.TB, m *mirror.Mirror) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	t.Cleanup(func() {
		m.Close()
		if err := <-done; err != nil && !errors.Is(err, mirror.ErrMirrorClosed) {
			t.Errorf("mirror run: %v", err)
		}
	})
}

// WaitStatus waits up to 20 seconds for cond to hold of m's status and returns
// that status; it fails the test with the last status otherwise.
func WaitStatus(t testing.TB, m *mirror.Mirror, what string, cond func(mirror.Status) bool) mirror.Status {
	t.Helper()
	return WaitStatusFor(t, m, what, 20*time.Second, cond)
}

// WaitStatusFor is WaitStatus with a deadline of d. Status is read from memory, so
// polling it costs next to nothing.
func WaitStatusFor(t testing.TB, m *mirror.Mirror, what string, d time.Duration, cond func(mirror.Status) bool) mirror.Status {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := m.Status()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror %s: waited for %s; status %+v", filepath.Base(s.ID), what, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitState waits for m to reach state.
func WaitState(t testing.TB, m *mirror.Mirror, state mirror.State) mirror.Status {
	t.Helper()
	return WaitStatus(t, m, "state "+string(state), func(s mirror.Status) bool { return s.State == state })
}
