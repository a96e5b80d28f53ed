package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestEmbeddedPrimary builds the example, starts it with a writer and a reader,
// and drives it with the real git and OpenSSH: the writer pushes and clones, the
// reader clones but may not push, a missing repository is not found, an unknown
// key is refused, and SIGTERM stops the program cleanly.
func TestEmbeddedPrimary(t *testing.T) {
	git := testutil.NewGit(t)
	testutil.Require(t, "ssh")
	bin := testutil.BuildBinary(t, "./examples/embed")
	writer, reader, stranger := testutil.GenerateKey(t, testutil.Ed25519), testutil.GenerateKey(t, testutil.ECDSA256), testutil.GenerateKey(t, testutil.Ed25519)
	usersFile := filepath.Join(t.TempDir(), "users")
	users := fmt.Sprintf("alice write %s\nbob read %s\n", writer.AuthorizedKey, reader.AuthorizedKey)
	if err := os.WriteFile(usersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	n := testutil.StartServer(t, testutil.ServerOptions{Bin: bin, Args: []string{"-users", usersFile, "-repo", "DEMO/hello", "-repo", "demo/other.git"}})
	known := n.KnownHosts(t, 0)
	url := n.SSHURL("DEMO", "hello")

	work := t.TempDir()
	git.SetSSH(writer, known)
	git.Run(work, "clone", url, "w")
	sha := git.CommitFile(filepath.Join(work, "w"), "README.md", "hello\n", "first")
	git.Run(filepath.Join(work, "w"), "push", "origin", "HEAD:main")

	git.SetSSH(reader, known)
	git.Run(work, "clone", url, "r")
	if got := strings.TrimSpace(git.Run(filepath.Join(work, "r"), "rev-parse", "HEAD")); got != sha {
		t.Fatalf("the reader's clone is at %s, want %s", got, sha)
	}
	git.CommitFile(filepath.Join(work, "r"), "b.txt", "b\n", "by bob")
	refused := func(what, want string, args ...string) {
		t.Helper()
		if _, err := git.TryRun(work, args...); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: want %q, got %v", what, want, err)
		}
	}
	refused("a reader's push", "Repository not found", "-C", filepath.Join(work, "r"), "push", "origin", "HEAD:main")
	refused("clone of a missing repository", "Repository not found", "clone", n.SSHURL("DEMO", "missing"), "m")
	git.Run(work, "clone", n.SSHURL("DEMO", "other"), "o") // the second -repo, given as PROJ/slug.git in lower case

	git.SetSSH(stranger, known)
	refused("clone with an unknown key", "Permission denied", "clone", url, "s")

	if err := n.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v\nstderr:\n%s", err, n.Stderr)
	}
	if strings.Contains(n.Stderr.String(), "level=ERROR") {
		t.Fatalf("errors logged:\n%s", n.Stderr)
	}
}

// TestBadUsersFile shows that a malformed users file stops the program with the
// file and line named.
func TestBadUsersFile(t *testing.T) {
	bin := testutil.BuildBinary(t, "./examples/embed")
	usersFile := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(usersFile, []byte("alice admin ssh-ed25519 AAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := testutil.StartServer(t, testutil.ServerOptions{Bin: bin, Args: []string{"-users", usersFile}, NoWait: true})
	if err := n.Wait(); err == nil {
		t.Fatal("the program accepted a malformed users file")
	}
	if want := usersFile + ":1:"; !strings.Contains(n.Stderr.String(), want) {
		t.Fatalf("stderr does not name %s:\n%s", want, n.Stderr)
	}
}
