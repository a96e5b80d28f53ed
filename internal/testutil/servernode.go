package testutil

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
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

	"github.com/gitfleet/gitfleet"
)

// BuildProgram builds the main package pkg (a path relative to the module root,
// such as "./examples/server") into out with `go build`.
func BuildProgram(pkg, out string) error {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("find the module root: %w", err)
	}
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = strings.TrimSpace(string(root))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// BuildBinary builds pkg (see BuildProgram) into a temporary directory and
// returns the program's path; the test fails when the build does.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if err := BuildProgram(pkg, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// LockedBuffer is a bytes.Buffer safe for a writing process and a reading test.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *LockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *LockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ServerNode is an examples/server process (a primary or a mirror) started on
// free loopback ports that are set only through the environment.
type ServerNode struct {
	t        testing.TB
	Bin      string // the server binary
	Home     string
	HTTPPort int
	SSHPort  int
	MeshPort int
	Env      []string // the process's whole environment
	Args     []string // arguments after -home HOME
	Scheme   string   // "http" or "https"
	Client   *http.Client
	Cmd      *exec.Cmd
	Stdout   *LockedBuffer
	Stderr   *LockedBuffer
	done     chan struct{}
	exitErr  error
}

// ServerOptions configure StartServer.
type ServerOptions struct {
	Bin  string   // the server binary (required)
	Home string   // reuse a home (a restart); empty for a fresh one
	Env  []string // extra environment, after the defaults
	// Ports, when set, reuses the ports of an earlier node.
	Ports *ServerNode
	// HTTPPort, when set, is the HTTP port (a mirror's base URL names it).
	HTTPPort int
	// CA, when set, makes the node serve HTTPS with a certificate from CA and
	// trust CA (SSL_CERT_FILE) for its own outgoing HTTPS.
	CA *CA
	// NoWait skips waiting for /status to say RUNNING.
	NoWait bool
	// Args are more arguments for the binary, after -home HOME.
	Args []string
}

// StartServer starts the server binary and, unless o.NoWait, waits until its
// /status says RUNNING. The process is killed (its whole process group) at test
// end if still running.
func StartServer(t testing.TB, o ServerOptions) *ServerNode {
	t.Helper()
	n := &ServerNode{t: t, Bin: o.Bin, Home: o.Home, Args: o.Args, Client: http.DefaultClient, Scheme: "http"}
	if n.Home == "" {
		n.Home = t.TempDir()
	}
	switch {
	case o.Ports != nil:
		n.HTTPPort, n.SSHPort, n.MeshPort = o.Ports.HTTPPort, o.Ports.SSHPort, o.Ports.MeshPort
	default:
		n.HTTPPort, n.SSHPort, n.MeshPort = FreePort(t), FreePort(t), FreePort(t)
		if o.HTTPPort != 0 {
			n.HTTPPort = o.HTTPPort
		}
	}
	n.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + n.Home,
		"GOTRACEBACK=all",
		"SERVER_ADDRESS=127.0.0.1",
		fmt.Sprintf("SERVER_PORT=%d", n.HTTPPort),
		fmt.Sprintf("PLUGIN_SSH_PORT=%d", n.SSHPort),
		fmt.Sprintf("PLUGIN_BITBUCKETGIT_MESH_SIDECAR_DEFAULTPORT=%d", n.MeshPort),
	}
	if o.CA != nil {
		leaf := o.CA.Issue(t, LeafOptions{})
		n.Env = append(n.Env, "SERVER_SSL_ENABLED=true", "SERVER_SSL_CERTIFICATE="+leaf.CertFile,
			"SERVER_SSL_CERTIFICATEPRIVATEKEY="+leaf.KeyFile, "SSL_CERT_FILE="+o.CA.File)
		n.Scheme = "https"
		n.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.CA.Pool}}}
	}
	n.Env = append(n.Env, o.Env...)
	n.Start()
	if !o.NoWait {
		n.WaitRunning()
	}
	return n
}

// Start starts the process (again, after it exited) with the node's settings.
func (n *ServerNode) Start() {
	n.t.Helper()
	n.Stdout, n.Stderr = &LockedBuffer{}, &LockedBuffer{}
	n.Cmd = exec.Command(n.Bin, append([]string{"-home", n.Home}, n.Args...)...)
	n.Cmd.Env = n.Env
	n.Cmd.Stdout, n.Cmd.Stderr = n.Stdout, n.Stderr
	SetProcessGroup(n.Cmd)
	if err := n.Cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	done := make(chan struct{})
	n.done = done
	cmd := n.Cmd
	go func() { n.exitErr = cmd.Wait(); close(done) }()
	n.t.Cleanup(func() {
		select {
		case <-done:
			return
		default:
		}
		KillProcessGroup(cmd)
		<-done
	})
}

// Done returns a channel that is closed when the current process has exited.
func (n *ServerNode) Done() <-chan struct{} { return n.done }

// PID is the server process's id.
func (n *ServerNode) PID() int { return n.Cmd.Process.Pid }

// Exited reports whether the process has exited.
func (n *ServerNode) Exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// WaitRunning waits up to 60 s for /status to say RUNNING.
func (n *ServerNode) WaitRunning() {
	n.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if n.Exited() {
			n.t.Fatalf("server exited: %v\nstderr:\n%s", n.exitErr, n.Stderr)
		}
		resp, err := n.Client.Get(n.URL("/status"))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), "RUNNING") {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.t.Fatalf("server not RUNNING in 60 s\nstderr:\n%s", n.Stderr)
}

// Stop sends sig to the server process and waits for it to exit.
func (n *ServerNode) Stop(sig syscall.Signal) error {
	n.t.Helper()
	n.Cmd.Process.Signal(sig)
	return n.Wait()
}

// Kill kills the server's whole process group with SIGKILL (a crash: children
// such as git or the storage sidecar die with it) and waits for the server. On
// Windows it kills the server process alone.
func (n *ServerNode) Kill() {
	n.t.Helper()
	KillProcessGroup(n.Cmd)
	n.Wait()
}

// Wait waits up to 90 s for the process to exit and returns its exit error.
func (n *ServerNode) Wait() error {
	n.t.Helper()
	select {
	case <-n.done:
	case <-time.After(90 * time.Second):
		n.t.Fatalf("server did not exit\nstderr:\n%s", n.Stderr)
	}
	return n.exitErr
}

// URL is the node's HTTP(S) URL for path.
func (n *ServerNode) URL(path string) string {
	return fmt.Sprintf("%s://127.0.0.1:%d%s", n.Scheme, n.HTTPPort, path)
}

// AdminCreds returns the administrator credentials the node generated.
func (n *ServerNode) AdminCreds() (user, password string) {
	n.t.Helper()
	b, err := os.ReadFile(filepath.Join(gitfleet.Home(n.Home).ConfigDir(), "admin-password"))
	if err != nil {
		n.t.Fatal(err)
	}
	user, password, _ = strings.Cut(strings.TrimSpace(string(b)), ":")
	return user, password
}

// API makes a REST call as the administrator and returns status and body; a
// failed connection is status 0.
func (n *ServerNode) API(method, path string, body any) (int, []byte) {
	n.t.Helper()
	var r io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			n.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, n.URL(path), r)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	u, p := n.AdminCreds()
	req.SetBasicAuth(u, p)
	resp, err := n.Client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// MustAPI is API that fails the test unless the status is want.
func (n *ServerNode) MustAPI(want int, method, path string, body any) []byte {
	n.t.Helper()
	status, data := n.API(method, path, body)
	if status != want {
		n.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, data)
	}
	return data
}

// SSHURL is the clone URL of PROJECT/slug on this node.
func (n *ServerNode) SSHURL(project, slug string) string {
	return fmt.Sprintf("ssh://git@127.0.0.1:%d/%s/%s.git", n.SSHPort, strings.ToLower(project), slug)
}

// RepoDir is the directory of PROJECT/slug in the node's home.
func (n *ServerNode) RepoDir(project, slug string) string {
	return gitfleet.Home(n.Home).RepoDir(gitfleet.RepoName{Project: project, Slug: slug})
}

// KnownHosts writes a known_hosts file pinning the node's SSH host keys for
// 127.0.0.1 at port (the node's SSH port when port is 0) and returns its path.
func (n *ServerNode) KnownHosts(t testing.TB, port int) string {
	t.Helper()
	if port == 0 {
		port = n.SSHPort
	}
	var lines []string
	for _, name := range []string{"ssh_host_ed25519_key.pub", "ssh_host_rsa_key.pub", "ssh_host_ecdsa_key.pub"} {
		b, err := os.ReadFile(filepath.Join(gitfleet.Home(n.Home).ConfigDir(), name))
		if err != nil {
			continue
		}
		lines = append(lines, fmt.Sprintf("[127.0.0.1]:%d %s", port, strings.TrimSpace(string(b))))
	}
	if len(lines) == 0 {
		t.Fatalf("no host keys in %s", n.Home)
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// AddUser creates project (when missing) and gives user a new Ed25519 key and
// PROJECT_WRITE on it; it returns the key.
func (n *ServerNode) AddUser(t testing.TB, user, project string) *Key {
	t.Helper()
	if st, _ := n.API("GET", "/rest/api/1.0/projects/"+project, nil); st == 404 {
		n.MustAPI(201, "POST", "/rest/api/1.0/projects", map[string]string{"key": project, "name": project})
	}
	key := GenerateKey(t, Ed25519)
	n.MustAPI(201, "POST", "/rest/ssh/1.0/keys?user="+user, map[string]string{"text": key.AuthorizedKey})
	n.MustAPI(204, "PUT", "/rest/api/1.0/projects/"+project+"/permissions/users?name="+user+"&permission=PROJECT_WRITE", nil)
	return key
}

// CreateRepo creates repository name in project.
func (n *ServerNode) CreateRepo(t testing.TB, project, name string) {
	t.Helper()
	n.MustAPI(201, "POST", "/rest/api/1.0/projects/"+project+"/repos", map[string]string{"name": name})
}
