// Package sshservetest runs an in-process Git-over-SSH server for tests, in the
// way net/http/httptest runs an HTTP server: a real sshserve.Server on a loopback
// port, over a temporary mesh.Store, with a generated user key, a pinned host key
// and a ready GIT_SSH_COMMAND, all removed when the test ends.
//
// Typical usage:
//
//	srv := sshservetest.NewServer(t)
//	srv.SeedRepo("PROJ", "repo")
//	cmd := exec.Command("git", "clone", srv.URL("PROJ", "repo"), dir)
//	cmd.Env = append(os.Environ(), srv.Env()...)
//
// Users are principals with a key and grants. The default user, "tester", may
// write every repository; AddUser adds others with only the grants given.
package sshservetest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/sshserve"
)

// DefaultUser is the name of the user NewServer creates, who may write every
// repository.
const DefaultUser = "tester"

// Server is a running test server.
type Server struct {
	// Server is the SSH server; Stats and the other methods may be used freely.
	*sshserve.Server
	// Store holds the repositories, under a temporary directory.
	Store *mesh.Store
	// Host and Port are the loopback address the server listens on.
	Host string
	Port int
	// HostKey is the server's public host key, pinned in KnownHosts.
	HostKey ssh.PublicKey
	// KnownHosts is the path of a known_hosts file trusting only this server.
	KnownHosts string
	// User is the default user ("tester"), who may write every repository.
	User *User

	t     TB
	dir   string
	mu    sync.Mutex
	users map[string]*User // by key (marshalled public key)
}

// User is a principal of the test server with its key.
type User struct {
	// Name is the principal's name (what whoami prints).
	Name string
	// Signer is the user's private key, for Go SSH clients.
	Signer ssh.Signer
	// KeyPath is the private key file (mode 0600), for ssh -i.
	KeyPath string
	// GitSSHCommand is a GIT_SSH_COMMAND value that connects with this user's key
	// and trusts only the server's host key.
	GitSSHCommand string

	grants map[string]sshserve.Access // "PROJ/slug", "PROJ/*" or "*"
}

// TB is the part of testing.TB the fixture uses; *testing.T and *testing.B
// satisfy it.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	TempDir() string
	Cleanup(func())
}

// Option changes the server's configuration before it starts.
type Option func(*sshserve.Server)

// WithLogger sends the server's logs to l.
func WithLogger(l *slog.Logger) Option { return func(s *sshserve.Server) { s.Logger = l } }

// NewServer starts a server for the duration of the test. opts may adjust the
// sshserve.Server (limits, hooks, PROXY settings) before it starts serving; the
// Backend, PublicKeyCallback and Authorizer are set by the fixture, but an option
// may wrap them.
//
// NewServer skips the test when git is not installed (and fails it instead when
// GITFLEET_INTEROP=require).
func NewServer(t TB, opts ...Option) *Server {
	t.Helper()
	if _, err := testutil.LookPath("git"); err != nil {
		if testutil.Required() {
			t.Fatalf("sshservetest: git is required (%s=require): %v", testutil.InteropEnv, err)
		}
		t.Skipf("sshservetest: git is not installed: %v", err)
	}
	dir := t.TempDir()
	store, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: filepath.Join(dir, "repositories")})
	if err != nil {
		t.Fatalf("sshservetest: open store: %v", err)
	}
	hostKeys, err := sshserve.LoadOrCreateHostKeys(filepath.Join(dir, "hostkeys"))
	if err != nil {
		store.Close()
		t.Fatalf("sshservetest: %v", err)
	}
	s := &Server{Store: store, t: t, dir: dir, users: map[string]*User{}}
	s.Server = &sshserve.Server{
		HostKeys:          hostKeys,
		Backend:           store,
		PublicKeyCallback: s.lookupKey,
		Authorizer:        s.authorize,
		// Keepalives would only add traffic to short tests.
		KeepAliveInterval: -1,
	}
	for _, o := range opts {
		o(s.Server)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		store.Close()
		t.Fatalf("sshservetest: listen: %v", err)
	}
	s.Host = "127.0.0.1"
	s.Port = l.Addr().(*net.TCPAddr).Port
	s.HostKey = hostKeys[0].PublicKey()
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	var kh strings.Builder
	for _, k := range hostKeys {
		kh.WriteString(knownHostsLine(s.Host, s.Port, k.PublicKey()))
	}
	if err := os.WriteFile(s.KnownHosts, []byte(kh.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.Server.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Server.Shutdown(ctx)
		<-served
		store.Close()
	})
	s.User = s.AddUser(DefaultUser, Write("*"))
	return s
}

func knownHostsLine(host string, port int, key ssh.PublicKey) string {
	return "[" + host + "]:" + strconv.Itoa(port) + " " + string(ssh.MarshalAuthorizedKey(key))
}

// Addr returns "host:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// URL returns the ssh:// clone URL of a repository.
func (s *Server) URL(project, slug string) string {
	return gitfleet.CloneURL(gitfleet.SSHBaseURL(s.Host, s.Port), gitfleet.RepoName{Project: project, Slug: slug})
}

// Env returns the environment entries that make git use the default user's key
// against this server: GIT_SSH_COMMAND and GIT_SSH_VARIANT.
func (s *Server) Env() []string { return s.User.Env() }

// Env returns the environment entries that make git connect as u.
func (u *User) Env() []string {
	return []string{"GIT_SSH_COMMAND=" + u.GitSSHCommand, "GIT_SSH_VARIANT=ssh"}
}

// Grant is access to the repositories matching Pattern: "PROJ/slug", "PROJ/*" or
// "*". Write access implies read.
type Grant struct {
	Pattern string
	Access  sshserve.Access
}

// Read grants read access to the repositories matching pattern.
func Read(pattern string) Grant { return Grant{pattern, sshserve.AccessRead} }

// Write grants write (and read) access to the repositories matching pattern.
func Write(pattern string) Grant { return Grant{pattern, sshserve.AccessWrite} }

// AddUser creates a user with a new Ed25519 key and the given grants:
// AddUser("alice", sshservetest.Read("PROJ/repo")).
func (s *Server) AddUser(name string, grants ...Grant) *User {
	s.t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		s.t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		s.t.Fatal(err)
	}
	keyDir, err := os.MkdirTemp(s.dir, "key-")
	if err != nil {
		s.t.Fatal(err)
	}
	path := filepath.Join(keyDir, "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		s.t.Fatal(err)
	}
	u := &User{Name: name, Signer: signer, KeyPath: path, GitSSHCommand: testutil.SSHCommand(path, s.KnownHosts),
		grants: map[string]sshserve.Access{}}
	s.AddKey(u, signer.PublicKey())
	for _, g := range grants {
		s.Grant(u, g)
	}
	return u
}

// AddKey maps one more public key to user u (for keys made elsewhere, such as
// RSA or security keys).
func (s *Server) AddKey(u *User, key ssh.PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[string(key.Marshal())] = u
}

// Grant gives u the access g describes. A later grant for the same pattern
// replaces the earlier.
func (s *Server) Grant(u *User, g Grant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pattern := g.Pattern
	if pattern != "*" {
		proj, slug, _ := strings.Cut(pattern, "/")
		pattern = strings.ToUpper(proj) + "/" + strings.ToLower(slug)
		if slug == "*" {
			pattern = strings.ToUpper(proj) + "/*"
		}
	}
	u.grants[pattern] = g.Access
}

func (s *Server) lookupKey(_ context.Context, _ sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
	s.mu.Lock()
	u := s.users[string(key.Marshal())]
	s.mu.Unlock()
	if u == nil {
		return sshserve.Principal{}, fmt.Errorf("sshservetest: unknown key %s", ssh.FingerprintSHA256(key))
	}
	return sshserve.Principal{Name: u.Name, ID: u.Name, Kind: sshserve.KindUser}, nil
}

func (s *Server) authorize(_ context.Context, _ sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var u *User
	for _, cand := range s.users {
		if cand.Name == p.Name {
			u = cand
			break
		}
	}
	if u == nil {
		return sshserve.ErrDenied
	}
	for _, pattern := range []string{project + "/" + slug, project + "/*", "*"} {
		if g, ok := u.grants[pattern]; ok && g >= access {
			return nil
		}
	}
	return sshserve.ErrDenied
}

// CreateRepo creates an empty repository.
func (s *Server) CreateRepo(project, slug string) {
	s.t.Helper()
	if err := s.Store.Create(context.Background(), project, slug); err != nil {
		s.t.Fatalf("sshservetest: create %s/%s: %v", project, slug, err)
	}
}

// SeedRepo creates a repository holding a small deterministic history (a main
// branch of 20 commits, a few branches and tags) and returns main's commit id.
func (s *Server) SeedRepo(project, slug string) string {
	s.t.Helper()
	src := filepath.Join(s.t.TempDir(), "seed-"+project+"-"+slug+".git")
	if err := testutil.BuildRepo(context.Background(), src, testutil.SmallRepo); err != nil {
		s.t.Fatalf("sshservetest: build seed repository: %v", err)
	}
	return s.SeedFrom(project, slug, src)
}

// SeedFrom creates or updates a repository with every ref of the local repository
// at dir, and returns the id its main branch (or HEAD) then points at.
func (s *Server) SeedFrom(project, slug, dir string) string {
	s.t.Helper()
	ctx := context.Background()
	if _, err := s.Store.Fetch(ctx, project, slug, mesh.FetchOptions{URL: dir}); err != nil {
		s.t.Fatalf("sshservetest: seed %s/%s from %s: %v", project, slug, dir, err)
	}
	refs, err := s.Store.Refs(ctx, project, slug)
	if err != nil {
		s.t.Fatal(err)
	}
	return refs["refs/heads/main"]
}
