package sshserve_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }

// gitAs returns a git driver that connects to srv as user u.
func gitAs(t *testing.T, u *sshservetest.User) *testutil.Git {
	t.Helper()
	g := testutil.NewGit(t)
	g.SetEnv("GIT_SSH_COMMAND", u.GitSSHCommand)
	g.SetEnv("GIT_SSH_VARIANT", "ssh")
	return g
}

// gitWithKey returns a git driver that connects to srv with a testutil key.
func gitWithKey(t *testing.T, srv *sshservetest.Server, k *testutil.Key) *testutil.Git {
	t.Helper()
	g := testutil.NewGit(t)
	g.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(k.Path, srv.KnownHosts))
	g.SetEnv("GIT_SSH_VARIANT", "ssh")
	return g
}

// sshAs returns an OpenSSH client driver for srv as user u.
func sshAs(t *testing.T, srv *sshservetest.Server, u *sshservetest.User) *testutil.SSH {
	t.Helper()
	return testutil.NewSSH(t, "git", srv.Host, srv.Port, &testutil.Key{Path: u.KeyPath}, srv.KnownHosts)
}

func tempDir(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name)
}

func mustContain(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("%s: %q does not contain %q", what, got, want)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
