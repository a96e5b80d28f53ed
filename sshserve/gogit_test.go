package sshserve_test

import (
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// TestGoGitClient drives go-git's SSH client against the server backed by git:
// ls-remote, clone, push and fetch, beside the git CLI of TestGitOverOpenSSH.
func TestGoGitClient(t *testing.T) {
	srv := sshservetest.NewServer(t, sshservetest.WithGitBackend())
	require.False(t, srv.GoGit)
	head := srv.SeedRepo("PROJ", "repo")
	reader := srv.AddUser("reader", sshservetest.Read("PROJ/repo"))
	url := srv.URL("PROJ", "repo")

	listed, err := testutil.GoGitLsRemote(url, reader.Auth())
	require.NoError(t, err)
	for name, id := range srv.Refs("PROJ", "repo") {
		assert.Equal(t, id, listed[name], name)
	}
	assert.Equal(t, head, listed["HEAD"])
	assert.NotEmpty(t, listed["refs/tags/v1.0.0^{}"])

	readClone, err := git.PlainClone(filepath.Join(t.TempDir(), "r"), false, &git.CloneOptions{URL: url, Auth: reader.Auth()})
	require.NoError(t, err)
	assert.Equal(t, head, testutil.GoGitHead(t, readClone))

	clone, err := git.PlainClone(filepath.Join(t.TempDir(), "w"), false, &git.CloneOptions{URL: url, Auth: srv.Auth()})
	require.NoError(t, err)
	next := testutil.GoGitCommitFile(t, clone, "go-git.txt", "pushed by go-git\n", "go-git push")
	require.NoError(t, clone.Push(&git.PushOptions{Auth: srv.Auth(),
		RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/main", "refs/heads/main:refs/heads/topic"}}))
	refs := srv.Refs("PROJ", "repo")
	assert.Equal(t, next, refs["refs/heads/main"])
	assert.Equal(t, next, refs["refs/heads/topic"])

	require.NoError(t, readClone.Fetch(&git.FetchOptions{Auth: reader.Auth()}))
	fetched, err := readClone.Reference("refs/remotes/origin/main", true)
	require.NoError(t, err)
	assert.Equal(t, next, fetched.Hash().String())

	// The server's git agrees the pushed objects are whole.
	g := testutil.NewGit(t)
	g.Fsck(filepath.Join(srv.Store.Root(), "PROJ", "repo.git"))

	// A read-only user's push is refused.
	testutil.GoGitCommitFile(t, readClone, "no.txt", "no\n", "refused")
	err = readClone.Push(&git.PushOptions{Auth: reader.Auth(), RefSpecs: []config.RefSpec{"HEAD:refs/heads/main"}})
	require.Error(t, err)
	assert.Equal(t, next, srv.Refs("PROJ", "repo")["refs/heads/main"])
}
