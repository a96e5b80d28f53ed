package sshservetest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// withoutGit empties PATH for the test, so that no git program can be found or
// run.
func withoutGit(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
}

// withRecordingGit puts first on PATH a git that only records that it ran and
// fails, and returns a function reporting whether it ran.
func withRecordingGit(t *testing.T) func() bool {
	dir := t.TempDir()
	marker := filepath.Join(dir, "git-ran")
	script := "#!/bin/sh\necho \"$@\" >> '" + marker + "'\nexit 1\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "git"), []byte(script), 0o755))
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}
}

// TestGoGitBackend drives the go-git backend with go-git as the client, on a
// PATH without git (the backend chosen because git is missing) and with git
// on PATH but the backend forced (and no git process run).
func TestGoGitBackend(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) (opts []sshservetest.Option, check func(t *testing.T))
	}{
		{"no git on PATH", func(t *testing.T) ([]sshservetest.Option, func(*testing.T)) {
			withoutGit(t)
			return nil, func(*testing.T) {}
		}},
		{"forced", func(t *testing.T) ([]sshservetest.Option, func(*testing.T)) {
			ran := withRecordingGit(t)
			return []sshservetest.Option{sshservetest.WithGoGitBackend()}, func(t *testing.T) {
				assert.False(t, ran(), "a git process ran")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, check := tc.setup(t)
			// The server's log shows why a session ended early.
			opts = append(opts, sshservetest.WithLogger(testutil.Logger(t)))
			srv := sshservetest.NewServer(t, opts...)
			require.True(t, srv.GoGit)
			require.Nil(t, srv.Store)
			head := srv.SeedRepo("PROJ", "repo")
			require.Equal(t, "301107291985a108dd280c9780b41e39e21b7f0a", head, "SeedRepo's history is the git backend's")
			reader := srv.AddUser("reader", sshservetest.Read("PROJ/*"))
			url := srv.URL("PROJ", "repo")

			// Refs listed, as ls-remote lists them: every ref, HEAD, peeled tags.
			listed, err := testutil.GoGitLsRemote(url, reader.Auth())
			require.NoError(t, err)
			for name, id := range srv.Refs("PROJ", "repo") {
				assert.Equal(t, id, listed[name], name)
			}
			assert.Equal(t, head, listed["HEAD"])
			assert.NotEmpty(t, listed["refs/tags/v0.0.0^{}"], "annotated tag not peeled")

			// Clone as the reader.
			readClone, err := git.PlainClone(filepath.Join(t.TempDir(), "r"), false, &git.CloneOptions{URL: url, Auth: reader.Auth()})
			require.NoError(t, err)
			assert.Equal(t, head, testutil.GoGitHead(t, readClone))

			// Push as the writer: a new commit, then a new branch, then a delete.
			clone, err := git.PlainClone(filepath.Join(t.TempDir(), "w"), false, &git.CloneOptions{URL: url, Auth: srv.Auth()})
			require.NoError(t, err)
			next := testutil.GoGitCommitFile(t, clone, "new/file.txt", "hello\n", "a new commit")
			require.NoError(t, clone.Push(&git.PushOptions{Auth: srv.Auth()}))
			require.NoError(t, clone.Push(&git.PushOptions{Auth: srv.Auth(),
				RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/feature", ":refs/heads/branch-000"}}))
			refs := srv.Refs("PROJ", "repo")
			assert.Equal(t, next, refs["refs/heads/main"])
			assert.Equal(t, next, refs["refs/heads/feature"])
			assert.NotContains(t, refs, "refs/heads/branch-000")

			// Fetch what was pushed into the reader's clone.
			require.NoError(t, readClone.Fetch(&git.FetchOptions{Auth: reader.Auth()}))
			fetched, err := readClone.Reference("refs/remotes/origin/main", true)
			require.NoError(t, err)
			assert.Equal(t, next, fetched.Hash().String())

			// The reader may not push.
			testutil.GoGitCommitFile(t, readClone, "x.txt", "x", "refused")
			err = readClone.Push(&git.PushOptions{Auth: reader.Auth(), RefSpecs: []config.RefSpec{"HEAD:refs/heads/reader"}})
			require.Error(t, err)
			assert.NotContains(t, srv.Refs("PROJ", "repo"), "refs/heads/reader")

			// A missing repository answers as a refusal does.
			_, err = testutil.GoGitLsRemote(srv.URL("PROJ", "missing"), srv.Auth())
			require.Error(t, err)

			check(t)
		})
	}
}

// TestGoGitBackendRefusesUploadArchive checks git-upload-archive is refused with
// a message saying why and exit status 128.
func TestGoGitBackendRefusesUploadArchive(t *testing.T) {
	srv := sshservetest.NewServer(t, sshservetest.WithGoGitBackend())
	srv.SeedRepo("PROJ", "repo")
	client, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User:            "git",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(srv.User.Signer)},
		HostKeyCallback: srv.Auth().HostKeyCallback,
	})
	require.NoError(t, err)
	defer client.Close()
	sess, err := client.NewSession()
	require.NoError(t, err)
	defer sess.Close()
	out, err := sess.CombinedOutput("git-upload-archive 'PROJ/repo.git'")
	var exit *ssh.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 128, exit.ExitStatus())
	assert.Contains(t, string(out), "git-upload-archive is not served by the go-git test backend")
}

// TestGoGitBackendWithGitCLI runs the git program against the go-git backend:
// a clone, a fetch that needs several rounds of negotiation, a push of a thin
// pack, protocol v1 and v2 requests, and a push that is not a fast-forward.
func TestGoGitBackendWithGitCLI(t *testing.T) {
	testutil.Require(t, "git")
	srv := sshservetest.NewServer(t, sshservetest.WithGoGitBackend())
	head := srv.SeedRepo("PROJ", "repo")
	url := srv.URL("PROJ", "repo")
	g := testutil.NewGit(t)
	g.SetSSH(&testutil.Key{Path: srv.User.KeyPath}, srv.KnownHosts)

	for _, v := range []string{"0", "1", "2"} {
		t.Run("ls-remote protocol v"+v, func(t *testing.T) {
			out := g.Run("", "-c", "protocol.version="+v, "ls-remote", url)
			assert.Contains(t, out, head+"\tHEAD")
			assert.Contains(t, out, "refs/tags/v1.0.0^{}")
		})
	}

	work := t.TempDir()
	a := filepath.Join(work, "a")
	g.Run("", "clone", "-q", url, a)
	assert.Equal(t, head, strings.TrimSpace(g.Run(a, "rev-parse", "HEAD")))
	g.Fsck(a)

	// A second clone falls 40 commits behind, each changing an existing file
	// (so the push is a thin pack), and then fetches: more haves than one round.
	b := filepath.Join(work, "b")
	g.Run("", "clone", "-q", url, b)
	for i := range 40 {
		g.CommitFile(a, "d000/s0/f000.txt", strings.Repeat("line\n", i+1), "change")
	}
	g.Run(a, "push", "-q", "origin", "HEAD:main")
	for i := range 40 {
		g.CommitFile(b, "b.txt", strings.Repeat("b\n", i+1), "other")
	}
	g.Run(b, "fetch", "-q", "origin")
	want := strings.TrimSpace(g.Run(a, "rev-parse", "HEAD"))
	assert.Equal(t, want, strings.TrimSpace(g.Run(b, "rev-parse", "origin/main")))
	assert.Equal(t, want, srv.Refs("PROJ", "repo")["refs/heads/main"])
	g.Fsck(b)

	// b's push of main is not a fast-forward: refused, main unchanged.
	_, err := g.TryRun(b, "push", "-q", "origin", "HEAD:main")
	require.Error(t, err)
	assert.Equal(t, want, srv.Refs("PROJ", "repo")["refs/heads/main"])
}
