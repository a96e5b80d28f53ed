package sshserve_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// TestGitOverOpenSSH drives the real git and OpenSSH client through every service,
// for each kind of key.
func TestGitOverOpenSSH(t *testing.T) {
	srv := sshservetest.NewServer(t)
	head := srv.SeedRepo("PROJ", "repo")
	for _, kt := range []testutil.KeyType{testutil.Ed25519, testutil.ECDSA256, testutil.RSA3072} {
		t.Run(string(kt), func(t *testing.T) {
			key := testutil.GenerateKey(t, kt)
			u := srv.AddUser("user-"+string(kt), sshservetest.Write("PROJ/*"))
			srv.AddKey(u, key.Public)
			g := gitWithKey(t, srv, key)

			// whoami through the OpenSSH client names the key's principal.
			c := testutil.NewSSH(t, "git", srv.Host, srv.Port, key, srv.KnownHosts)
			out, stderr, err := c.Run("whoami")
			if err != nil || out != u.Name+"\n" {
				t.Fatalf("whoami = %q, %v\n%s", out, err, stderr)
			}

			for _, proto := range []string{"0", "2"} {
				dst := tempDir(t, "clone-v"+proto)
				g.Run("", "-c", "protocol.version="+proto, "clone", "-q", srv.URL("PROJ", "repo"), dst)
				if got := strings.TrimSpace(g.Run(dst, "rev-parse", "HEAD")); got != head {
					t.Fatalf("protocol v%s clone HEAD %s, want %s", proto, got, head)
				}
				g.Fsck(dst)
			}

			// The spellings git does not send itself still reach the same repository.
			dst := tempDir(t, "clone-path")
			g.Run("", "clone", "-q", "--upload-pack=git upload-pack", srv.URL("proj", "REPO")+"", dst)

			shallow := tempDir(t, "shallow")
			g.Run("", "clone", "-q", "--depth=1", srv.URL("PROJ", "repo"), shallow)
			if n := strings.TrimSpace(g.Run(shallow, "rev-list", "--count", "HEAD")); n != "1" {
				t.Fatalf("shallow clone has %s commits", n)
			}

			partial := tempDir(t, "partial")
			g.Run("", "clone", "-q", "--filter=blob:none", "--no-checkout", srv.URL("PROJ", "repo"), partial)
			if got := g.Run(partial, "config", "remote.origin.partialclonefilter"); strings.TrimSpace(got) != "blob:none" {
				t.Fatalf("partial clone filter %q", got)
			}
			// Blobs were left out: the object count is below a full clone's.
			missing := g.Run(partial, "rev-list", "--objects", "--missing=print", "HEAD")
			if !strings.Contains(missing, "\n?") && !strings.HasPrefix(missing, "?") {
				t.Fatal("partial clone fetched every blob")
			}

			// Push a commit, then fetch it into the first clone.
			work := tempDir(t, "work")
			g.Run("", "clone", "-q", srv.URL("PROJ", "repo"), work)
			branch := "topic-" + string(kt)
			g.Run(work, "checkout", "-q", "-b", branch)
			id := g.CommitFile(work, "pushed.txt", "pushed by "+string(kt)+"\n", "push over ssh")
			g.Run(work, "push", "-q", "origin", branch)
			refs, err := srv.Store.Refs(t.Context(), "PROJ", "repo")
			if err != nil || refs["refs/heads/"+branch] != id {
				t.Fatalf("after push the store has %s = %q (%v), want %s", branch, refs["refs/heads/"+branch], err, id)
			}
			other := tempDir(t, "clone-v2")
			g.Run("", "clone", "-q", srv.URL("PROJ", "repo"), other)
			g.Run(other, "fetch", "-q", "origin")
			if got := strings.TrimSpace(g.Run(other, "rev-parse", "origin/"+branch)); got != id {
				t.Fatalf("fetched %s = %s, want %s", branch, got, id)
			}

			// git archive --remote runs git-upload-archive.
			cmd := g.Command("", "archive", "--remote="+srv.URL("PROJ", "repo"), "--format=tar", "main")
			var tarOut, tarErr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &tarOut, &tarErr
			if err := cmd.Run(); err != nil {
				t.Fatalf("archive: %v\n%s", err, tarErr.String())
			}
			tr := tar.NewReader(&tarOut)
			files := 0
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				if h.Typeflag == tar.TypeReg {
					files++
				}
			}
			if files == 0 {
				t.Fatal("archive holds no files")
			}
		})
	}
}

// TestRefusals shows what a client sees when it is refused: an unknown key fails
// authentication; a user without permission and a missing repository give the same
// message; a read-only user cannot push.
func TestRefusals(t *testing.T) {
	srv := sshservetest.NewServer(t)
	srv.SeedRepo("PROJ", "repo")
	reader := srv.AddUser("reader", sshservetest.Read("PROJ/repo"))
	nobody := srv.AddUser("nobody")

	t.Run("unknown key", func(t *testing.T) {
		g := gitWithKey(t, srv, testutil.GenerateKey(t, testutil.Ed25519))
		_, err := g.TryRun("", "ls-remote", srv.URL("PROJ", "repo"))
		if err == nil {
			t.Fatal("an unknown key listed refs")
		}
		mustContain(t, "stderr", err.Error(), "Permission denied (publickey)")
	})
	t.Run("no permission and missing repository look the same", func(t *testing.T) {
		g := gitAs(t, nobody)
		_, err1 := g.TryRun("", "ls-remote", srv.URL("PROJ", "repo"))
		_, err2 := gitAs(t, srv.User).TryRun("", "ls-remote", srv.URL("PROJ", "missing"))
		for _, err := range []error{err1, err2} {
			if err == nil {
				t.Fatal("ls-remote succeeded")
			}
			mustContain(t, "stderr", err.Error(), "Repository not found")
			mustContain(t, "stderr", err.Error(), "The requested repository does not exist, or you do not have permission to access it.")
		}
	})
	t.Run("read-only user pushing", func(t *testing.T) {
		g := gitAs(t, reader)
		work := tempDir(t, "work")
		g.Run("", "clone", "-q", srv.URL("PROJ", "repo"), work)
		g.CommitFile(work, "x.txt", "x\n", "not allowed")
		_, err := g.TryRun(work, "push", "-q", "origin", "HEAD:refs/heads/denied")
		if err == nil {
			t.Fatal("a read-only user pushed")
		}
		mustContain(t, "stderr", err.Error(), "Repository not found")
		refs, _ := srv.Store.Refs(t.Context(), "PROJ", "repo")
		if _, ok := refs["refs/heads/denied"]; ok {
			t.Fatal("the refused push created a ref")
		}
	})
	t.Run("exit status", func(t *testing.T) {
		c := sshAs(t, srv, nobody)
		_, stderr, err := c.Run("git-upload-pack", "'PROJ/repo.git'")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit %v, want status 1; stderr %q", err, stderr)
		}
		if stderr != sshserve.NotFoundMessage {
			t.Fatalf("stderr %q, want %q", stderr, sshserve.NotFoundMessage)
		}
	})
}
