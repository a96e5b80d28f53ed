//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestCertificateLogin configures the server binary with a certificate
// authority file and a revocation file (plugin.ssh.trusted.user.ca.keys and
// plugin.ssh.revoked.keys, from the environment) and logs in with certificates
// that ssh-keygen issued, through git and OpenSSH: alice, who has a project
// permission and no registered key, clones and pushes with her certificate and
// is greeted by ssh -T; a certificate for a name the server does not know and
// one with a revoked serial are refused. -check-config names a bad line of
// the authority file.
func TestCertificateLogin(t *testing.T) {
	keygen := testutil.Require(t, "ssh-keygen")
	testutil.Require(t, "ssh")
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(keygen, args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	key := func(name, principal, serial string) string {
		p := filepath.Join(dir, name)
		run("-q", "-t", "ed25519", "-N", "", "-f", p)
		run("-q", "-s", filepath.Join(dir, "ca"), "-I", name, "-n", principal, "-z", serial, "-V", "-1m:+1h", p+".pub")
		return p
	}
	run("-q", "-t", "ed25519", "-N", "", "-C", "users-ca", "-f", filepath.Join(dir, "ca"))
	alice := key("alice", "alice", "1")
	mallory := key("mallory", "mallory", "2")
	stolen := key("stolen", "alice", "13")
	caFile, revokedFile := filepath.Join(dir, "trusted-user-ca-keys"), filepath.Join(dir, "revoked-keys")
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, caFile, "# the users' CA\n"+string(ca))
	writeTestFile(t, revokedFile, "serial: 13\n")

	n := startNode(t, testutil.ServerOptions{Env: []string{
		"PLUGIN_SSH_TRUSTED_USER_CA_KEYS=" + caFile, "PLUGIN_SSH_REVOKED_KEYS=" + revokedFile}})
	n.MustAPI(201, "POST", "/rest/api/1.0/projects", map[string]string{"key": "PROJ", "name": "Project"})
	n.MustAPI(201, "POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": "repo"})
	n.MustAPI(204, "PUT", "/rest/api/1.0/projects/PROJ/permissions/users?name=alice&permission=PROJECT_WRITE", nil)
	known := n.KnownHosts(t, 0)
	url := n.SSHURL("PROJ", "repo")
	work := t.TempDir()

	g := testutil.NewGit(t)
	g.SetSSH(&testutil.Key{Path: alice}, known)
	g.Run(work, "clone", url, "a")
	g.CommitFile(filepath.Join(work, "a"), "README.md", "hello\n", "first")
	g.Run(filepath.Join(work, "a"), "push", "origin", "HEAD:main")

	_, stderr, err := testutil.NewSSH(t, "git", "127.0.0.1", n.SSHPort, &testutil.Key{Path: alice}, known).Run("-T")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr, "Hi alice! You've successfully authenticated") {
		t.Fatalf("ssh -T with alice's certificate: %v %q", err, stderr)
	}
	for name, k := range map[string]string{"unknown user": mallory, "revoked serial": stolen} {
		g.SetSSH(&testutil.Key{Path: k}, known)
		if _, err := g.TryRun(work, "clone", url, "x-"+filepath.Base(k)); err == nil || !strings.Contains(err.Error(), "Permission denied") {
			t.Fatalf("%s: clone: %v", name, err)
		}
	}
	logs := n.Stderr.String()
	for _, want := range []string{"cert_id=alice", "certificate serial 13 is listed", `no user \"mallory\"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the server log lacks %q:\n%s", want, logs)
		}
	}

	// -check-config reads the files too.
	writeTestFile(t, caFile, "# the users' CA\n"+string(ca)+"ssh-dss AAAAB3NzaC1kc3MAAACBAP\n")
	cmd := exec.Command(serverBin, "-home", t.TempDir(), "-check-config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "PLUGIN_SSH_TRUSTED_USER_CA_KEYS=" + caFile}
	out, err := cmd.Output()
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), caFile+":3:") ||
		!strings.Contains(string(out), "plugin.ssh.trusted.user.ca.keys") {
		t.Fatalf("-check-config with a bad authority file: %v\n%s", err, out)
	}
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
