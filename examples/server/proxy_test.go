//go:build unix

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// proxyConfig is deploy/ssh-proxy.cfg (the file the README tells operators to
// use) with its two ports replaced by the test's.
func proxyConfig(t *testing.T, listen, sshPort int) string {
	t.Helper()
	b, err := os.ReadFile("deploy/ssh-proxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "127.0.0.1:2222", fmt.Sprintf("127.0.0.1:%d", listen), 1)
	cfg = strings.Replace(cfg, "127.0.0.1:7999", fmt.Sprintf("127.0.0.1:%d", sshPort), 1)
	p := filepath.Join(t.TempDir(), "ssh-proxy.cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startProxy runs a proxy command line and waits until it listens on port.
func startProxy(t *testing.T, port int, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out testutil.LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited: %s", name, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen: %s", name, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBehindProxies puts HAProxy and then portfwd, both with send-proxy-v2, in
// front of a node that requires the PROXY protocol, clones through each from
// 127.0.0.2, and finds that address in the server's log; a direct connection
// without a header is refused.
func TestBehindProxies(t *testing.T) {
	haproxy := testutil.Require(t, "haproxy")
	n := startNode(t, testutil.ServerOptions{Env: []string{
		"PLUGIN_SSH_PROXYPROTOCOL=required",
		"PLUGIN_SSH_PROXYPROTOCOL_TRUSTED=127.0.0.1/32",
	}})
	g, key := setupUserRepo(t, n)
	work := t.TempDir()

	portfwdBin := filepath.Join(t.TempDir(), "portfwd")
	if out, err := exec.Command("go", "build", "-o", portfwdBin, "../portfwd").CombinedOutput(); err != nil {
		t.Fatalf("build portfwd: %v\n%s", err, out)
	}
	proxies := []struct {
		name string
		run  func(t *testing.T, cfg string, port int)
	}{
		{"haproxy", func(t *testing.T, cfg string, port int) { startProxy(t, port, haproxy, "-db", "-f", cfg) }},
		{"portfwd", func(t *testing.T, cfg string, port int) { startProxy(t, port, portfwdBin, "-f", cfg) }},
	}
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			port := testutil.FreePort(t)
			p.run(t, proxyConfig(t, port, n.SSHPort), port)
			// The client connects from 127.0.0.2 so that its address differs from
			// the proxy's (127.0.0.1).
			kh := n.KnownHosts(t, port)
			g.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(key.Path, kh)+" -b 127.0.0.2")
			url := fmt.Sprintf("ssh://git@127.0.0.1:%d/proj/repo.git", port)
			dir := filepath.Join(work, p.name)
			g.Run(work, "clone", "-q", url, dir)
			g.CommitFile(dir, p.name+".txt", p.name+"\n", "via "+p.name)
			pushes := strings.Count(n.Stderr.String(), "service=git-receive-pack")
			g.Run(dir, "push", "-q", "origin", "HEAD:main")
			waitFor(t, func() bool { return strings.Count(n.Stderr.String(), "service=git-receive-pack") > pushes })
		})
	}
	// Every session the server logged came from 127.0.0.2, never from the proxy.
	sessions := 0
	for _, line := range strings.Split(n.Stderr.String(), "\n") {
		if strings.Contains(line, "msg=session") {
			sessions++
			if !strings.Contains(line, "remote=127.0.0.2:") {
				t.Errorf("session logged with the proxy's address: %s", line)
			}
		}
	}
	if sessions < 4 {
		t.Fatalf("%d sessions logged, want a clone and a push through each proxy", sessions)
	}
	// A direct connection without a PROXY header is refused.
	g.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(key.Path, n.KnownHosts(t, 0)))
	if _, err := g.TryRun(work, "ls-remote", n.SSHURL("PROJ", "repo")); err == nil {
		t.Fatal("a direct connection without a PROXY header was served")
	}
}
