//go:build linux

package reliability

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// mountTmpfs mounts a tmpfs of size (such as "3m") on dir and unmounts it at
// test end. A refused mount skips the test, and fails it under
// GITFLEET_INTEROP=require.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := "cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): " + strings.TrimSpace(string(out))
		if testutil.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// TestDiskFullPush: the server's repositories live on a 3 MiB file system; a
// push of 8 MiB of incompressible data fails with a message that names the
// cause, the repository keeps its refs and passes fsck, the server keeps
// running, and a small push afterwards succeeds (the failed push left nothing
// behind that fills the disk).
func TestDiskFullPush(t *testing.T) {
	home := t.TempDir()
	mountTmpfs(t, filepath.Join(home, "shared", "data", "repositories"), "3m")
	node := testutil.StartServer(t, testutil.ServerOptions{Bin: serverBin, Home: home})
	key := node.AddUser(t, "alice", "PROJ")
	node.CreateRepo(t, "PROJ", "repo")
	g := testutil.NewGit(t)
	g.SetSSH(key, node.KnownHosts(t, 0))
	work := t.TempDir()
	g.Run(work, "clone", "-q", node.SSHURL("PROJ", "repo"), "w")
	wt := filepath.Join(work, "w")
	g.CommitFile(wt, "README", "small\n", "first")
	g.Run(wt, "push", "-q", "origin", "HEAD:main")
	dir := node.RepoDir("PROJ", "repo")
	before := refs(t, dir)

	big := make([]byte, 8<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(wt, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	g.Run(wt, "add", "big.bin")
	g.Run(wt, "commit", "-q", "-m", "too big for the disk")
	_, err := g.TryRun(wt, "push", "origin", "HEAD:main", "HEAD:refs/heads/other")
	if err == nil {
		t.Fatal("a push larger than the file system succeeded")
	}
	t.Logf("the client saw:\n%v", err)
	if !strings.Contains(err.Error(), "No space left on device") {
		t.Errorf("the push failed without naming the cause (No space left on device):\n%v", err)
	}
	if after := refs(t, dir); after != before {
		t.Errorf("refs changed by a failed push:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	fsck(t, dir)
	if node.Exited() {
		t.Fatalf("the server exited:\n%s", node.Stderr)
	}

	// The failed push left nothing behind: a small one fits.
	g.Run(wt, "reset", "-q", "--hard", "HEAD~1")
	next := g.CommitFile(wt, "README", "small again\n", "second")
	g.Run(wt, "push", "-q", "origin", "HEAD:main")
	if got := refs(t, dir); !strings.Contains(got, next+" refs/heads/main") {
		t.Errorf("after the disk-full push, a small push did not land:\n%s", got)
	}
	fsck(t, dir)
	for _, line := range logLines(node.Stderr.String(), "ERROR") {
		t.Logf("server logged: %s", line)
	}
}
