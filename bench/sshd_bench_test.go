//go:build bench

package bench

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// benchSshd is OpenSSH's sshd as the benchmark's peer.
type benchSshd struct {
	port int
	dir  string
	user string
	host *testutil.Key
	cmd  *exec.Cmd
}

// startSshd starts sshd on a free loopback port with a throwaway host key and
// authorized_keys (the same settings as testutil.StartSshd: no PAM,
// MaxStartups 200), plus one difference that matters for timing: sessions get
// SHLVL=1. sshd runs every command through the user's login shell, and bash
// reads ~/.bashrc when started by sshd as a top-level shell; on a development
// machine that file can start tools that cost far more than the Git work (on
// this one, root's ~/.bashrc runs `pyenv init`: about 0.4 s per session).
// With SHLVL=1 bash is not top-level and skips it, as the shell of a service
// account serving Git would have nothing to run.
func (e *env) startSshd(keys ...*testutil.Key) *benchSshd {
	t := e.t
	t.Helper()
	path := testutil.Require(t, "sshd")
	s := &benchSshd{port: testutil.FreePort(t), dir: t.TempDir(), host: testutil.GenerateKey(t, testutil.Ed25519)}
	hostPath := filepath.Join(s.dir, "host_ed25519")
	if err := os.WriteFile(hostPath, s.host.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	var ak strings.Builder
	for _, k := range keys {
		ak.WriteString(k.AuthorizedKey + "\n")
	}
	akPath := filepath.Join(s.dir, "authorized_keys")
	if err := os.WriteFile(akPath, []byte(ak.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		t.Fatal(err)
	}
	s.user = strings.TrimSpace(string(out))
	cfg := []string{
		"Port " + strconv.Itoa(s.port), "ListenAddress 127.0.0.1", "HostKey " + hostPath,
		"AuthorizedKeysFile " + akPath, "PidFile none", "UsePAM no", "StrictModes no", "PermitRootLogin yes",
		"PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
		"MaxStartups 200", "MaxSessions 100", "LogLevel ERROR", "PrintMotd no", "UseDNS no", "X11Forwarding no",
		"AcceptEnv GIT_PROTOCOL", "SetEnv PATH=" + os.Getenv("PATH") + " SHLVL=1",
	}
	cfgPath := filepath.Join(s.dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(cfg, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll("/run/sshd", 0o755) // sshd's privilege-separation directory
	stderr := &bytes.Buffer{}
	s.cmd = exec.Command(path, "-D", "-e", "-f", cfgPath)
	s.cmd.Stderr = stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-done:
			t.Fatalf("sshd exited: %s", stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %d: %s", s.port, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pid is the listening sshd's process id.
func (s *benchSshd) pid() int { return s.cmd.Process.Pid }

// knownHosts writes a known_hosts file trusting this sshd.
func (s *benchSshd) knownHosts(e *env) string {
	return testutil.WriteKnownHosts(e.t, "127.0.0.1", s.port, s.host.Public)
}

// url is the ssh:// URL of a repository directory on this sshd.
func (s *benchSshd) url(dir string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d/%s", s.user, s.port, strings.TrimPrefix(dir, "/"))
}
