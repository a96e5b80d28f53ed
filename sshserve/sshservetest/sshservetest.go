// Package sshservetest runs an in-process Git-over-SSH server for tests, in the
// way net/http/httptest runs an HTTP server: a real sshserve.Server on a loopback
// port, over temporary repositories, with a generated user key, a pinned host key,
// a ready GIT_SSH_COMMAND and a go-git auth method, all removed when the test ends.
//
// Typical usage, with the git program:
//
//	srv := sshservetest.NewServer(t)
//	srv.SeedRepo("PROJ", "repo")
//	cmd := exec.Command("git", "clone", srv.URL("PROJ", "repo"), dir)
//	cmd.Env = append(os.Environ(), srv.Env()...)
//
// or with go-git, which needs no program at all:
//
//	srv := sshservetest.NewServer(t)
//	srv.SeedRepo("PROJ", "repo")
//	repo, err := git.PlainClone(dir, false, &git.CloneOptions{URL: srv.URL("PROJ", "repo"), Auth: srv.Auth()})
//
// Users are principals with a key and grants. The default user, "tester", may
// write every repository; AddUser adds others with only the grants given. An
// option that sets TrustedUserCAKeys lets certificates in: a certificate logs
// in as the user its principal names (sshserve.PrincipalsCallback).
//
// # Backends
//
// Where the git program is installed (exec.LookPath finds it), the server stores
// its repositories in a mesh.Store (Server.Store) and runs git upload-pack and
// receive-pack, as a real server does. Where it is not, the server serves from a
// go-git backend instead (Server.GoGit is true, Server.Store is nil), so a test
// on a machine without git can still clone, fetch and push with go-git or any
// other client. WithGoGitBackend and WithGitBackend force either; a test forcing
// git on a machine without it is skipped (failed under GITFLEET_INTEROP=require).
// CreateRepo, SeedRepo, SeedFrom and Refs work with both, and SeedRepo makes the
// same commits (the same ids) with both.
//
// The go-git backend is for fixtures, never for servers: go-git's server side is
// slow and memory-hungry on large repositories. It serves protocol v0 and v1 (a
// client asking for v2 gets v0, which git clients accept) and lacks, compared
// with git:
//
//   - protocol v2 and everything only it carries (ls-refs with ref prefixes,
//     object-info, packfile URIs);
//   - partial clone (filter), shallow clones and fetches (depth, deepen), and
//     multi_ack, side-band (so no progress), thin-pack and include-tag when
//     fetching;
//   - hooks and ref-change events (Store's events have no counterpart), atomic
//     pushes (git push --atomic is refused by the client), push options and
//     report-status-v2;
//   - git-upload-archive (git archive --remote), which is refused with an
//     error saying so.
//
// Pushes check each ref's old id and are serialised per repository; thin packs
// are accepted. Pushed objects are written loose.
package sshservetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/gogitbackend"
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
	// Store holds the repositories, under a temporary directory, when the git
	// backend serves them; it is nil when GoGit is true.
	Store *mesh.Store
	// GoGit reports that the go-git backend serves the repositories (see the
	// package documentation).
	GoGit bool
	// Host and Port are the loopback address the server listens on.
	Host string
	Port int
	// HostKey is the server's public host key, pinned in KnownHosts.
	HostKey ssh.PublicKey
	// KnownHosts is the path of a known_hosts file trusting only this server.
	KnownHosts string
	// User is the default user ("tester"), who may write every repository.
	User *User

	t        TB
	dir      string
	gogit    *gogitbackend.Backend // when GoGit
	hostKeys []ssh.PublicKey
	mu       sync.Mutex
	users    map[string]*User // by key (marshalled public key)
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

	srv    *Server
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

// WithGoGitBackend makes the server serve from the go-git backend even where
// git is installed. Like WithGitBackend, it must come before any option that
// replaces or wraps the server's Backend.
func WithGoGitBackend() Option { return func(s *sshserve.Server) { chooserOf(s).force = forceGoGit } }

// WithGitBackend makes the server serve from a mesh.Store running git, and
// skips the test where git is not installed (fails it under
// GITFLEET_INTEROP=require).
func WithGitBackend() Option { return func(s *sshserve.Server) { chooserOf(s).force = forceGit } }

type force int

const (
	forceNone force = iota
	forceGit
	forceGoGit
)

// chooser is the Backend NewServer installs before the options run: the backend
// options record their choice in it, and once they have run it serves through
// the backend chosen, under whatever the other options wrapped around it.
type chooser struct {
	force  force
	target sshserve.GitBackend
}

func (c *chooser) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	return c.target.ServeGit(ctx, req, stdin, stdout, stderr)
}

func chooserOf(s *sshserve.Server) *chooser {
	c, ok := s.Backend.(*chooser)
	if !ok {
		panic("sshservetest: WithGoGitBackend and WithGitBackend must come before options that replace the Backend")
	}
	return c
}

// NewServer starts a server for the duration of the test. opts may adjust the
// sshserve.Server (limits, hooks, PROXY settings) before it starts serving; the
// Backend, PublicKeyCallback and Authorizer are set by the fixture, but an option
// may wrap them.
//
// The repositories are served by git where it is installed and by the go-git
// backend where it is not, unless an option forces either (see the package
// documentation).
func NewServer(t TB, opts ...Option) *Server {
	t.Helper()
	_, gitErr := exec.LookPath("git")
	dir := t.TempDir()
	hostKeys, err := sshserve.LoadOrCreateHostKeys(filepath.Join(dir, "hostkeys"))
	if err != nil {
		t.Fatalf("sshservetest: %v", err)
	}
	s := &Server{t: t, dir: dir, users: map[string]*User{}}
	choice := &chooser{}
	s.Server = &sshserve.Server{
		HostKeys:          hostKeys,
		Backend:           choice,
		PublicKeyCallback: s.lookupKey,
		// Certificates (once an option trusts a CA) log in as the user their
		// principal names.
		CertificateCallback: sshserve.PrincipalsCallback(s.lookupName),
		Authorizer:          s.authorize,
		// Keepalives would only add traffic to short tests.
		KeepAliveInterval: -1,
	}
	for _, o := range opts {
		o(s.Server)
	}
	root := filepath.Join(dir, "repositories")
	switch {
	case choice.force == forceGoGit || (choice.force == forceNone && gitErr != nil):
		s.GoGit = true
		s.gogit = &gogitbackend.Backend{Root: root, Logger: s.Server.Logger}
		choice.target = s.gogit
	case gitErr != nil:
		if testutil.Required() {
			t.Fatalf("sshservetest: git is required (%s=require): %v", testutil.InteropEnv, gitErr)
		}
		t.Skipf("sshservetest: git is not installed: %v", gitErr)
	default:
		store, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: root})
		if err != nil {
			t.Fatalf("sshservetest: open store: %v", err)
		}
		s.Store = store
		choice.target = store
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.closeStore()
		t.Fatalf("sshservetest: listen: %v", err)
	}
	s.Host = "127.0.0.1"
	s.Port = l.Addr().(*net.TCPAddr).Port
	s.HostKey = hostKeys[0].PublicKey()
	s.KnownHosts = filepath.Join(dir, "known_hosts")
	var kh strings.Builder
	for _, k := range hostKeys {
		s.hostKeys = append(s.hostKeys, k.PublicKey())
		kh.WriteString(knownHostsLine(s.Host, s.Port, k.PublicKey()))
	}
	if err := os.WriteFile(s.KnownHosts, []byte(kh.String()), 0o600); err != nil {
		l.Close()
		s.closeStore()
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
		s.closeStore()
	})
	s.User = s.AddUser(DefaultUser, Write("*"))
	return s
}

func (s *Server) closeStore() {
	if s.Store != nil {
		s.Store.Close()
	}
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

// Auth returns a go-git auth method that connects as the default user and
// trusts only the server's host keys.
func (s *Server) Auth() *gitssh.PublicKeys { return s.User.Auth() }

// Auth returns a go-git auth method that connects as u and trusts only the
// server's host keys: pass it as the Auth of go-git's clone, fetch, push and
// list options.
func (u *User) Auth() *gitssh.PublicKeys {
	return &gitssh.PublicKeys{
		User:                  "git",
		Signer:                u.Signer,
		HostKeyCallbackHelper: gitssh.HostKeyCallbackHelper{HostKeyCallback: u.srv.checkHostKey},
	}
}

// checkHostKey accepts the server's host keys only.
func (s *Server) checkHostKey(_ string, _ net.Addr, key ssh.PublicKey) error {
	for _, k := range s.hostKeys {
		if bytes.Equal(k.Marshal(), key.Marshal()) {
			return nil
		}
	}
	return fmt.Errorf("sshservetest: host key %s is not the test server's", ssh.FingerprintSHA256(key))
}

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
		srv: s, grants: map[string]sshserve.Access{}}
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

// lookupName maps a certificate principal to the user of that name.
func (s *Server) lookupName(_ context.Context, _ sshserve.ConnInfo, name string) (sshserve.Principal, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range s.users {
		if u.Name == name {
			return sshserve.Principal{Name: u.Name, ID: u.Name, Kind: sshserve.KindUser}, nil
		}
	}
	return sshserve.Principal{}, fmt.Errorf("sshservetest: no user %q", name)
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
	var err error
	if s.GoGit {
		err = s.gogit.Create(context.Background(), project, slug)
	} else {
		err = s.Store.Create(context.Background(), project, slug)
	}
	if err != nil {
		s.t.Fatalf("sshservetest: create %s/%s: %v", project, slug, err)
	}
}

// SeedRepo creates a repository holding a small deterministic history (a main
// branch of 20 commits, a few branches and tags) and returns main's commit id,
// the same with either backend.
func (s *Server) SeedRepo(project, slug string) string {
	s.t.Helper()
	src := filepath.Join(s.t.TempDir(), "seed-"+project+"-"+slug+".git")
	var err error
	if s.GoGit {
		err = testutil.BuildRepoGoGit(src, testutil.SmallRepo)
	} else {
		err = testutil.BuildRepo(context.Background(), src, testutil.SmallRepo)
	}
	if err != nil {
		s.t.Fatalf("sshservetest: build seed repository: %v", err)
	}
	return s.SeedFrom(project, slug, src)
}

// SeedFrom creates or updates a repository with every ref of the local repository
// at dir, and returns the id its main branch then points at.
func (s *Server) SeedFrom(project, slug, dir string) string {
	s.t.Helper()
	ctx := context.Background()
	var err error
	if s.GoGit {
		err = s.gogit.Import(ctx, project, slug, dir)
	} else {
		_, err = s.Store.Fetch(ctx, project, slug, mesh.FetchOptions{URL: dir})
	}
	if err != nil {
		s.t.Fatalf("sshservetest: seed %s/%s from %s: %v", project, slug, dir, err)
	}
	return s.Refs(project, slug)["refs/heads/main"]
}

// Refs returns the refs of a repository as name -> id, read on the server's
// side (no client involved).
func (s *Server) Refs(project, slug string) map[string]string {
	s.t.Helper()
	var refs map[string]string
	var err error
	if s.GoGit {
		refs, err = s.gogit.Refs(context.Background(), project, slug)
	} else {
		refs, err = s.Store.Refs(context.Background(), project, slug)
	}
	if err != nil {
		s.t.Fatalf("sshservetest: refs of %s/%s: %v", project, slug, err)
	}
	return refs
}
