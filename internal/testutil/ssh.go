package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHOptions are the options every test ssh invocation uses: no config file, only
// the given key, strict host-key checking against a throwaway known_hosts, batch
// mode, and no agent or forwarding.
func SSHOptions(keyPath, knownHosts string) []string {
	return []string{
		"-F", "/dev/null",
		"-i", keyPath,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + knownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes",
		"-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10",
	}
}

// SSHCommand returns a GIT_SSH_COMMAND value that runs OpenSSH with SSHOptions.
func SSHCommand(keyPath, knownHosts string) string {
	opts := SSHOptions(keyPath, knownHosts)
	for i, o := range opts {
		opts[i] = shellQuote(o)
	}
	return "ssh " + strings.Join(opts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '-' || r == '_' || r == '.' || r == '=' || r == ':' || r == ',' || r == '@' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// KnownHostsLine returns a known_hosts line for a server at host:port with key.
func KnownHostsLine(host string, port int, key ssh.PublicKey) string {
	addr := host
	if port != 22 {
		addr = "[" + host + "]:" + strconv.Itoa(port)
	}
	return addr + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

// WriteKnownHosts writes a throwaway known_hosts file that trusts keys for
// host:port, and returns its path.
func WriteKnownHosts(t testing.TB, host string, port int, keys ...ssh.PublicKey) string {
	t.Helper()
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(KnownHostsLine(host, port, k) + "\n")
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// SSH drives the real OpenSSH client.
type SSH struct {
	Path       string
	Key        *Key
	KnownHosts string
	Port       int
	Host       string
	User       string
}

// NewSSH returns an OpenSSH client driver for user@host:port with key, trusting
// knownHosts. It skips (fails under GITFLEET_INTEROP=require) when ssh is missing.
func NewSSH(t testing.TB, user, host string, port int, key *Key, knownHosts string) *SSH {
	t.Helper()
	return &SSH{Path: Require(t, "ssh"), Key: key, KnownHosts: knownHosts, Port: port, Host: host, User: user}
}

// Command returns an *exec.Cmd running remote command words over ssh.
func (s *SSH) Command(remote ...string) *exec.Cmd {
	args := append(SSHOptions(s.Key.Path, s.KnownHosts), "-p", strconv.Itoa(s.Port), s.User+"@"+s.Host)
	args = append(args, remote...)
	cmd := exec.Command(s.Path, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(s.KnownHosts)}
	return cmd
}

// Run runs a remote command and returns stdout, stderr and the error.
func (s *SSH) Run(remote ...string) (string, string, error) {
	cmd := s.Command(remote...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// Sshd is a real OpenSSH server started for a test on a loopback port with a
// throwaway configuration: its own host key and authorized_keys, no PAM.
type Sshd struct {
	Port           int
	Dir            string
	HostKey        *Key
	AuthorizedKeys string // path of the authorized_keys file (append to it freely)
	User           string // the user to connect as (the current user)
	cmd            *exec.Cmd
	stderr         *bytes.Buffer
}

// LoginShellEnv is an extraConfig line for StartSshd that leaves the user's shell
// to start as it does for any OpenSSH login (reading ~/.bashrc and the like): the
// cost OpenSSH has as installed, where each command runs through that shell.
func LoginShellEnv() string { return "SetEnv PATH=" + os.Getenv("PATH") }

// StartSshd starts OpenSSH's sshd on a free loopback port, trusting the given client
// keys, with extraConfig lines appended to its configuration. It is stopped at test
// end. It skips (fails under GITFLEET_INTEROP=require) when sshd is missing.
func StartSshd(t testing.TB, clientKeys []*Key, extraConfig ...string) *Sshd {
	t.Helper()
	path := Require(t, "sshd")
	dir := t.TempDir()
	host := GenerateKey(t, Ed25519)
	hostPath := filepath.Join(dir, "host_ed25519")
	if err := os.WriteFile(hostPath, host.PrivatePEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ak := filepath.Join(dir, "authorized_keys")
	var lines strings.Builder
	for _, k := range clientKeys {
		lines.WriteString(k.AuthorizedKey + "\n")
	}
	if err := os.WriteFile(ak, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	user := os.Getenv("USER")
	if user == "" {
		out, err := exec.Command("id", "-un").Output()
		if err != nil {
			t.Fatal(err)
		}
		user = strings.TrimSpace(string(out))
	}
	port := FreePort(t)
	cfg := []string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostPath,
		"AuthorizedKeysFile " + ak,
		"PidFile none",
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"MaxStartups 200",
		"MaxSessions 100",
		"LogLevel ERROR",
		"PrintMotd no",
		"UseDNS no",
		"X11Forwarding no",
		"AcceptEnv GIT_PROTOCOL",
	}
	// sshd runs each command through the user's shell; bash started by sshd
	// reads ~/.bashrc unless SHLVL says it is not top-level, and a developer's
	// .bashrc (version managers, prompts) would then be timed as OpenSSH's cost.
	// A caller that gives its own SetEnv line (LoginShellEnv: OpenSSH as
	// installed, the shell's start-up included) replaces this one.
	setEnv := "SetEnv PATH=" + os.Getenv("PATH") + " SHLVL=1"
	for _, l := range extraConfig {
		if strings.HasPrefix(l, "SetEnv ") {
			setEnv = ""
		}
	}
	if setEnv != "" {
		cfg = append(cfg, setEnv)
	}
	cfg = append(cfg, extraConfig...)
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(cfg, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd refuses to run without its privilege-separation directory.
	_ = os.MkdirAll("/run/sshd", 0o755)
	stderr := &bytes.Buffer{}
	cmd := exec.Command(path, "-D", "-e", "-f", cfgPath)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	s := &Sshd{Port: port, Dir: dir, HostKey: host, AuthorizedKeys: ak, User: user, cmd: cmd, stderr: stderr}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-done:
			t.Fatalf("sshd exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not listen on %d: %s", port, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the listening sshd's process id (for measuring its CPU and memory).
func (s *Sshd) PID() int { return s.cmd.Process.Pid }

// KnownHosts writes a known_hosts file trusting this sshd and returns its path.
func (s *Sshd) KnownHosts(t testing.TB) string {
	return WriteKnownHosts(t, "127.0.0.1", s.Port, s.HostKey.Public)
}

// URL returns an ssh:// URL for a repository path on this server.
func (s *Sshd) URL(path string) string {
	return fmt.Sprintf("ssh://%s@127.0.0.1:%d/%s", s.User, s.Port, strings.TrimPrefix(path, "/"))
}
