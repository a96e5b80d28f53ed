package sshserve_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// interopClient is an SSH client other than OpenSSH, as git's ssh program.
type interopClient struct {
	name string
	// env returns the environment that makes git use the client, given the
	// server, the user and a scratch directory for key files.
	env func(t *testing.T, srv *sshservetest.Server, u *sshservetest.User, dir string) []string
}

// run runs git with env and fails the test with the output on error.
func runGit(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %v: %v\n%s%s", args, err, stdout.String(), stderr.String())
	}
	return stdout.String() + stderr.String()
}

// hostFingerprints returns the SHA-256 fingerprints of the server's host keys.
func hostFingerprints(t *testing.T, srv *sshservetest.Server) []string {
	t.Helper()
	data, err := os.ReadFile(srv.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	var fps []string
	for rest := data; len(rest) > 0; {
		_, _, key, _, r, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			break
		}
		fps = append(fps, ssh.FingerprintSHA256(key))
		rest = r
	}
	if len(fps) == 0 {
		t.Fatal("no host keys in the fixture's known_hosts")
	}
	return fps
}

// interopClients are the independent SSH implementations git can run: PuTTY's
// plink, Dropbear's dbclient (with its default cipher choice, and restricted to
// AES-CTR with a plain HMAC) and paramiko (as a small ssh program for git).
func interopClients() []interopClient {
	dropbear := func(extra string) func(t *testing.T, srv *sshservetest.Server, u *sshservetest.User, dir string) []string {
		return func(t *testing.T, srv *sshservetest.Server, u *sshservetest.User, dir string) []string {
			dbclient := testutil.Require(t, "dbclient")
			convert := testutil.Require(t, "dropbearconvert")
			key := filepath.Join(dir, "key.dropbear")
			if out, err := exec.Command(convert, "openssh", "dropbear", u.KeyPath, key).CombinedOutput(); err != nil {
				t.Fatalf("dropbearconvert: %v\n%s", err, out)
			}
			// dbclient reads ~/.ssh/known_hosts: -y accepts the key on first use
			// and stores it; the second connection is then checked against it.
			return []string{"HOME=" + dir, "GIT_SSH_COMMAND=" + dbclient + " -y -i " + key + extra, "GIT_SSH_VARIANT=ssh"}
		}
	}
	return []interopClient{
		{"plink", func(t *testing.T, srv *sshservetest.Server, u *sshservetest.User, dir string) []string {
			plink := testutil.Require(t, "plink")
			puttygen := testutil.Require(t, "puttygen")
			ppk := filepath.Join(dir, "key.ppk")
			if out, err := exec.Command(puttygen, u.KeyPath, "-O", "private", "-o", ppk).CombinedOutput(); err != nil {
				t.Fatalf("puttygen: %v\n%s", err, out)
			}
			cmd := plink + " -batch -i " + ppk
			for _, fp := range hostFingerprints(t, srv) {
				cmd += " -hostkey " + fp
			}
			return []string{"HOME=" + dir, "GIT_SSH_COMMAND=" + cmd, "GIT_SSH_VARIANT=plink"}
		}},
		{"dbclient", dropbear("")},
		{"dbclient-aes-ctr", dropbear(" -c aes128-ctr -m hmac-sha2-256")},
		{"paramiko", func(t *testing.T, srv *sshservetest.Server, u *sshservetest.User, dir string) []string {
			python := pythonWith(t, "paramiko", "import paramiko")
			script, err := filepath.Abs("testdata/interop/paramiko_ssh.py")
			if err != nil {
				t.Fatal(err)
			}
			return []string{"GIT_SSH_COMMAND=" + python + " " + script, "GIT_SSH_VARIANT=ssh",
				"PARAMIKO_KEY=" + u.KeyPath, "PARAMIKO_KNOWN_HOSTS=" + srv.KnownHosts}
		}},
	}
}

// pythonWith returns a Python 3 interpreter for which check (a statement) runs:
// the one on PATH, else Debian's /usr/bin/python3, where Debian's python3-*
// packages install their modules. It skips (fails under GITFLEET_INTEROP=require)
// when neither has the module.
func pythonWith(t *testing.T, module, check string) string {
	t.Helper()
	var tried []string
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		out, err := exec.Command(path, "-c", check).CombinedOutput()
		if err == nil {
			return path
		}
		tried = append(tried, fmt.Sprintf("%s: %v: %s", path, err, bytes.TrimSpace(out)))
	}
	if testutil.Required() {
		t.Fatalf("python3 with %s is required (%s=require); tried %v", module, testutil.InteropEnv, tried)
	}
	t.Skipf("no python3 with %s: %v", module, tried)
	return ""
}

// TestInteropClients clones, fetches and pushes through the default configuration
// with SSH implementations other than OpenSSH, and checks that each ran on one of
// the default ciphers.
func TestInteropClients(t *testing.T) {
	testutil.Require(t, "git")
	for _, c := range interopClients() {
		t.Run(c.name, func(t *testing.T) {
			srv := sshservetest.NewServer(t)
			head := srv.SeedRepo("PROJ", "repo")
			dir := t.TempDir()
			env := append(c.env(t, srv, srv.User, dir), "GIT_PROTOCOL_FROM_USER=0")
			dst := filepath.Join(dir, "clone")
			// Protocol version 0: git passes -o SendEnv=GIT_PROTOCOL to "ssh"
			// programs for version 2, which only OpenSSH understands.
			runGit(t, env, "-c", "protocol.version=0", "clone", "-q", srv.URL("PROJ", "repo"), dst)
			if got := strings.TrimSpace(runGit(t, nil, "-C", dst, "rev-parse", "HEAD")); got != head {
				t.Fatalf("cloned HEAD %s, want %s", got, head)
			}
			if err := os.WriteFile(filepath.Join(dst, "interop.txt"), []byte(c.name+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			runGit(t, nil, "-C", dst, "add", "interop.txt")
			runGit(t, nil, "-C", dst, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "file from "+c.name)
			runGit(t, env, "-C", dst, "-c", "protocol.version=0", "push", "-q", "origin", "HEAD:refs/heads/"+c.name)
			pushed := strings.TrimSpace(runGit(t, nil, "-C", dst, "rev-parse", "HEAD"))
			if got := srv.Refs("PROJ", "repo")["refs/heads/"+c.name]; got != pushed {
				t.Fatalf("server has %q for the pushed branch, want %s", got, pushed)
			}
			runGit(t, env, "-C", dst, "-c", "protocol.version=0", "fetch", "-q", "origin")
			st := srv.Stats()
			var n uint64
			for cipher, count := range st.Ciphers {
				if !slices.Contains(sshserve.DefaultCiphers(), cipher) {
					t.Fatalf("negotiated cipher %q is not a default one (%v)", cipher, st.Ciphers)
				}
				n += count
			}
			if n != 3 {
				t.Fatalf("%d connections counted by cipher (%v), want 3", n, st.Ciphers)
			}
			t.Logf("%s negotiated %v", c.name, st.Ciphers)
		})
	}
}

// TestInteropLibgit2 clones with libgit2 (pygit2, whose SSH transport is libssh2),
// the library cargo, many IDEs and Python tools use.
func TestInteropLibgit2(t *testing.T) {
	python := pythonWith(t, "pygit2 (with SSH)", "import pygit2; assert pygit2.features & pygit2.GIT_FEATURE_SSH")
	srv := sshservetest.NewServer(t)
	head := srv.SeedRepo("PROJ", "repo")
	dir := t.TempDir()
	pub := filepath.Join(dir, "key.pub")
	if err := os.WriteFile(pub, ssh.MarshalAuthorizedKey(srv.User.Signer.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	// libgit2 checks the host key against ~/.ssh/known_hosts.
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	known, err := os.ReadFile(srv.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), known, 0o600); err != nil {
		t.Fatal(err)
	}
	// Without the server's keys in known_hosts the clone is refused: the check
	// is real.
	stranger := filepath.Join(dir, "stranger")
	if err := os.MkdirAll(filepath.Join(stranger, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "testdata/interop/pygit2_clone.py", srv.URL("PROJ", "repo"), filepath.Join(dir, "refused"), pub, srv.User.KeyPath)
	cmd.Env = append(os.Environ(), "HOME="+stranger)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "hostkey") {
		t.Fatalf("clone with an unknown host key: %v\n%s", err, out)
	}
	cmd = exec.Command(python, "testdata/interop/pygit2_clone.py", srv.URL("PROJ", "repo"), filepath.Join(dir, "clone"), pub, srv.User.KeyPath)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pygit2 clone: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != head {
		t.Fatalf("libgit2 cloned HEAD %q, want %s", got, head)
	}
	st := srv.Stats()
	if len(st.Ciphers) != 1 || st.Ciphers[ssh.CipherAES128CTR]+st.Ciphers[ssh.CipherAES128GCM]+st.Ciphers[ssh.CipherChaCha20Poly1305] != 1 {
		t.Fatalf("Stats.Ciphers = %v, want the one authenticated connection on one of the server's first ciphers", st.Ciphers)
	}
	t.Logf("libgit2 negotiated %v", st.Ciphers)
}
