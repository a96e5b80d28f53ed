package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }

// testConfig returns the configuration of a primary on free loopback ports.
func testConfig(t *testing.T, home gitfleet.Home, extra ...string) *props.Config {
	t.Helper()
	env := []string{
		"SERVER_ADDRESS=127.0.0.1",
		fmt.Sprintf("SERVER_PORT=%d", testutil.FreePort(t)),
		fmt.Sprintf("PLUGIN_SSH_PORT=%d", testutil.FreePort(t)),
	}
	p, err := props.Load(context.Background(), home.Dir(), props.LoadOptions{Environ: append(env, extra...)})
	if err != nil {
		t.Fatal(err)
	}
	cfg, problems := props.Check(p)
	if errs := problems.Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	return cfg
}

// serve runs n.ListenAndServe in the background and waits until the node is
// ready; the returned channel carries ListenAndServe's result.
// serveSSH starts n (closed at the end of the test) and returns a
// known_hosts file for its SSH port.
func serveSSH(t *testing.T, n *Node) string {
	t.Helper()
	serve(t, n)
	t.Cleanup(func() { n.Close() })
	hostKeys, err := sshserve.LoadOrCreateHostKeys(n.Home.ConfigDir())
	if err != nil {
		t.Fatal(err)
	}
	return testutil.WriteKnownHosts(t, "127.0.0.1", n.Config.SSH.Port, publicKeys(hostKeys)...)
}

func serve(t *testing.T, n *Node) <-chan error {
	t.Helper()
	served := make(chan error, 1)
	go func() { served <- n.ListenAndServe() }()
	select {
	case err := <-served:
		t.Fatalf("ListenAndServe: %v", err)
	case <-n.Ready():
	case <-time.After(60 * time.Second):
		t.Fatal("the node was not ready in 60 s")
	}
	return served
}

func getStatus(t *testing.T, cfg *props.Config) (int, string) {
	t.Helper()
	resp, err := http.Get(LocalURL(cfg) + PathStatus)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestLifecycle runs a primary with an in-process store and in-memory state
// through net/http's lifecycle: ready, serving /status, the embedder's handler
// and Setup; Shutdown makes ListenAndServe return ErrServerClosed, Close after
// it is harmless, and a second ListenAndServe is refused.
func TestLifecycle(t *testing.T) {
	home := gitfleet.Home(t.TempDir())
	cfg := testConfig(t, home)
	var setupRepos mesh.Repos
	n := &Node{
		Home: home, Config: cfg, State: mirror.NewMemoryState(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "embedder "+r.URL.Path) }),
		Setup: func(ctx context.Context, repos mesh.Repos) error {
			setupRepos = repos
			return repos.Create(ctx, "PROJ", "repo")
		},
	}
	served := serve(t, n)
	if code, body := getStatus(t, cfg); code != 200 || !strings.Contains(body, StateRunning) {
		t.Fatalf("/status: %d %s", code, body)
	}
	resp, err := http.Get(LocalURL(cfg) + "/anything")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "embedder /anything" {
		t.Fatalf("the embedder's handler answered %q", body)
	}
	if n.Storage() == nil || n.Storage() != setupRepos {
		t.Fatal("Storage is not what Setup was given")
	}
	if ok, err := n.Storage().Exists(context.Background(), "PROJ", "repo"); err != nil || !ok {
		t.Fatalf("the repository Setup created: %v %v", ok, err)
	}
	if _, ok := n.StorageState(); ok {
		t.Fatal("StorageState reports a sidecar for an in-process store")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe returned %v, want ErrServerClosed", err)
	}
	if code, _ := getStatus(t, cfg); code != 0 {
		t.Fatalf("HTTP still answers after Shutdown: %d", code)
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
	if err := n.ListenAndServe(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe after Shutdown: %v", err)
	}
}

// TestCloseBeforeServe shows that a Node closed before it serves never serves.
func TestCloseBeforeServe(t *testing.T) {
	n := &Node{}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := n.ListenAndServe(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe after Close: %v", err)
	}
}

// TestStartFailures shows that a start that fails returns its error and leaves
// nothing running: the HTTP port is free again.
func TestStartFailures(t *testing.T) {
	cases := []struct {
		name string
		edit func(n *Node, taken net.Listener)
		want string
	}{
		{"missing config", func(n *Node, _ net.Listener) { n.Config = nil }, "Node.Home and Node.Config are required"},
		{"ssh port taken", func(n *Node, taken net.Listener) {
			n.Config.SSH.Port = taken.Addr().(*net.TCPAddr).Port
		}, "plugin.ssh.port"},
		{"setup fails", func(n *Node, _ net.Listener) {
			n.Setup = func(context.Context, mesh.Repos) error { return errors.New("setup refused") }
		}, "setup refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := gitfleet.Home(t.TempDir())
			taken := testutil.ListenOn(t, "127.0.0.1:0")
			n := &Node{Home: home, Config: testConfig(t, home), State: mirror.NewMemoryState()}
			cfg := n.Config
			tc.edit(n, taken)
			err := n.ListenAndServe()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ListenAndServe = %v, want an error with %q", err, tc.want)
			}
			if code, _ := getStatus(t, cfg); code != 0 {
				t.Fatalf("HTTP still answers after a failed start: %d", code)
			}
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPrimaryUsesEmbedderCallbacks shows that on a primary the embedder's
// callbacks, wrapped by the upstream role, decide for users: a known user
// reads, a write is refused by the embedder's Authorizer with its own message,
// an unknown key is refused, and the mirrors' read question (readAccess) is
// answered with the same callbacks.
func TestPrimaryUsesEmbedderCallbacks(t *testing.T) {
	git := testutil.NewGit(t)
	testutil.Require(t, "ssh")
	home := gitfleet.Home(t.TempDir())
	cfg := testConfig(t, home)
	reader := testutil.GenerateKey(t, testutil.Ed25519)
	stranger := testutil.GenerateKey(t, testutil.Ed25519)
	n := &Node{
		Home: home, Config: cfg, State: mirror.NewMemoryState(),
		PublicKeyCallback: func(ctx context.Context, c sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
			if ssh.FingerprintSHA256(key) == reader.Fingerprint() {
				return sshserve.Principal{Name: "reader"}, nil
			}
			return sshserve.Principal{}, errors.New("unknown")
		},
		Authorizer: func(ctx context.Context, c sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
			if access == sshserve.AccessWrite {
				return &sshserve.DeniedError{Message: "reader may not push"}
			}
			return nil
		},
		Setup: func(ctx context.Context, repos mesh.Repos) error { return repos.Create(ctx, "PROJ", "repo") },
	}
	known := serveSSH(t, n)
	url := gitfleet.CloneURL(cfg.SSHBaseURL(), gitfleet.RepoName{Project: "PROJ", Slug: "repo"})
	work := t.TempDir()
	git.SetSSH(reader, known)
	git.Run(work, "clone", url, "r")
	git.CommitFile(work+"/r", "a", "a\n", "a")
	if _, err := git.TryRun(work+"/r", "push", "origin", "HEAD:main"); err == nil || !strings.Contains(err.Error(), "reader may not push") {
		t.Fatalf("push: %v", err)
	}
	git.SetSSH(stranger, known)
	if _, err := git.TryRun(work, "clone", url, "s"); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("clone with an unknown key: %v", err)
	}
	user, ok, err := n.readAccess(context.Background(), reader.Public, "PROJ", "repo")
	if user != "reader" || !ok || err != nil {
		t.Fatalf("readAccess(reader) = %q %v %v", user, ok, err)
	}
	if _, ok, _ := n.readAccess(context.Background(), stranger.Public, "PROJ", "repo"); ok {
		t.Fatal("readAccess lets an unknown key read")
	}
}
