package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// serverBin is the server binary built once for the package's tests.
var serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gitfleet-server-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin = filepath.Join(dir, "server")
	build := exec.Command("go", "build", "-o", serverBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build server:", err)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	testutil.VerifyMain(m)
}

// syncBuffer is a bytes.Buffer safe for a writer process and a reading test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// node is a server process started by a test.
type node struct {
	t        testing.TB
	home     string
	httpPort int
	sshPort  int
	meshPort int
	env      []string
	client   *http.Client
	scheme   string
	cmd      *exec.Cmd
	stdout   *syncBuffer
	stderr   *syncBuffer
	done     chan struct{}
	exitErr  error
}

// nodeOptions configure startNode.
type nodeOptions struct {
	home  string   // reuse a home (restart); empty for a fresh one
	env   []string // extra environment
	ports *node    // reuse the ports of an earlier node
	// ca, when set, makes the node serve HTTPS with a certificate from ca, and
	// trust ca (SSL_CERT_FILE) for its own outgoing HTTPS.
	ca *testutil.CA
	// noWait skips waiting for RUNNING (for nodes expected to fail).
	noWait bool
}

// startNode starts the server binary on free loopback ports set only through the
// environment, and waits until /status is RUNNING.
func startNode(t testing.TB, o nodeOptions) *node {
	t.Helper()
	n := &node{t: t, home: o.home, client: http.DefaultClient, scheme: "http"}
	if n.home == "" {
		n.home = t.TempDir()
	}
	if o.ports != nil {
		n.httpPort, n.sshPort, n.meshPort = o.ports.httpPort, o.ports.sshPort, o.ports.meshPort
	} else {
		n.httpPort, n.sshPort, n.meshPort = testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	}
	n.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + n.home,
		"SERVER_ADDRESS=127.0.0.1",
		fmt.Sprintf("SERVER_PORT=%d", n.httpPort),
		fmt.Sprintf("PLUGIN_SSH_PORT=%d", n.sshPort),
		fmt.Sprintf("PLUGIN_BITBUCKETGIT_MESH_SIDECAR_DEFAULTPORT=%d", n.meshPort),
	}
	if o.ca != nil {
		leaf := o.ca.Issue(t, testutil.LeafOptions{})
		n.env = append(n.env, "SERVER_SSL_ENABLED=true", "SERVER_SSL_CERTIFICATE="+leaf.CertFile,
			"SERVER_SSL_CERTIFICATEPRIVATEKEY="+leaf.KeyFile, "SSL_CERT_FILE="+o.ca.File)
		n.scheme = "https"
		n.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.ca.Pool}}}
	}
	n.env = append(n.env, o.env...)
	n.start()
	if !o.noWait {
		n.waitRunning()
	}
	return n
}

func (n *node) start() {
	n.t.Helper()
	n.stdout, n.stderr = &syncBuffer{}, &syncBuffer{}
	n.cmd = exec.Command(serverBin, "-home", n.home)
	n.cmd.Env = n.env
	n.cmd.Stdout, n.cmd.Stderr = n.stdout, n.stderr
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { n.exitErr = n.cmd.Wait(); close(n.done) }()
	n.t.Cleanup(func() {
		select {
		case <-n.done:
			return
		default:
		}
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-n.done
	})
}

// waitRunning waits for /status to say RUNNING.
func (n *node) waitRunning() {
	n.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			n.t.Fatalf("server exited: %v\nstdout:\n%s\nstderr:\n%s", n.exitErr, n.stdout, n.stderr)
		default:
		}
		resp, err := n.client.Get(n.url("/status"))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), "RUNNING") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("server not RUNNING in time\nstderr:\n%s", n.stderr)
}

// stop sends sig and waits for the process to exit, returning its exit error.
func (n *node) stop(sig syscall.Signal) error {
	n.t.Helper()
	n.cmd.Process.Signal(sig)
	return n.wait()
}

// wait waits for the process to exit and returns its exit error.
func (n *node) wait() error {
	n.t.Helper()
	select {
	case <-n.done:
	case <-time.After(90 * time.Second):
		n.t.Fatalf("server did not exit\nstderr:\n%s", n.stderr)
	}
	return n.exitErr
}

func (n *node) url(path string) string {
	return fmt.Sprintf("%s://127.0.0.1:%d%s", n.scheme, n.httpPort, path)
}

// adminCreds returns the generated administrator credentials "user:password".
func (n *node) adminCreds() (string, string) {
	n.t.Helper()
	b, err := os.ReadFile(filepath.Join(n.home, "shared", "config", "admin-password"))
	if err != nil {
		n.t.Fatal(err)
	}
	u, p, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	return u, p
}

// api makes a REST call as the administrator and returns status and body.
func (n *node) api(method, path string, body any) (int, []byte) {
	n.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, n.url(path), r)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	u, p := n.adminCreds()
	req.SetBasicAuth(u, p)
	resp, err := n.client.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// mustAPI is api that fails the test unless the status is want.
func (n *node) mustAPI(want int, method, path string, body any) []byte {
	n.t.Helper()
	status, data := n.api(method, path, body)
	if status != want {
		n.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, data)
	}
	return data
}

// sshURL returns the clone URL of PROJECT/slug on this node.
func (n *node) sshURL(project, slug string) string {
	return fmt.Sprintf("ssh://git@127.0.0.1:%d/%s/%s.git", n.sshPort, strings.ToLower(project), slug)
}

// knownHosts writes a known_hosts file pinning the node's host keys.
func (n *node) knownHosts(t testing.TB) string {
	t.Helper()
	return knownHostsFor(t, n.home, "127.0.0.1", n.sshPort)
}

// knownHostsFor pins the host keys stored in a home's shared/config.
func knownHostsFor(t testing.TB, home, host string, port int) string {
	t.Helper()
	var lines []string
	for _, name := range []string{"ssh_host_ed25519_key.pub", "ssh_host_rsa_key.pub"} {
		b, err := os.ReadFile(filepath.Join(home, "shared", "config", name))
		if err != nil {
			continue
		}
		lines = append(lines, fmt.Sprintf("[%s]:%d %s", host, port, strings.TrimSpace(string(b))))
	}
	if len(lines) == 0 {
		t.Fatalf("no host keys in %s", home)
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// setupUserRepo creates project PROJ with repository repo, a user alice with key
// and PROJECT_WRITE, and returns a git driver set up to use key.
func setupUserRepo(t *testing.T, n *node) (*testutil.Git, *testutil.Key) {
	t.Helper()
	n.mustAPI(201, "POST", "/rest/api/1.0/projects", map[string]string{"key": "PROJ", "name": "Project"})
	n.mustAPI(201, "POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": "repo"})
	key := testutil.GenerateKey(t, testutil.Ed25519)
	n.mustAPI(201, "POST", "/rest/ssh/1.0/keys?user=alice", map[string]string{"text": key.AuthorizedKey})
	n.mustAPI(204, "PUT", "/rest/api/1.0/projects/PROJ/permissions/users?name=alice&permission=PROJECT_WRITE", nil)
	g := testutil.NewGit(t)
	g.SetSSH(key, n.knownHosts(t))
	return g, key
}

// apiQuiet is api that reports a failed connection as status 0 instead of failing.
func (n *node) apiQuiet(method, path string, body any) (int, []byte) {
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, n.url(path), bytes.NewReader(data))
	u, p := n.adminCreds()
	req.SetBasicAuth(u, p)
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func httpNewRequest(method, url, user, pass string) (int, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, err
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitFor polls cond for up to 60 seconds.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func errorAs(err error, target any) bool { return errors.As(err, target) }
