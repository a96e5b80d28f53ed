package mirror_test

import (
	"bytes"
	"errors"
	"net"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// goGitAuth returns a go-git auth method for u trusting only the given host keys.
func goGitAuth(u *mirrortest.User, hostKeys ...ssh.PublicKey) *gitssh.PublicKeys {
	return &gitssh.PublicKeys{User: "git", Signer: u.Key.Signer, HostKeyCallbackHelper: gitssh.HostKeyCallbackHelper{
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			for _, k := range hostKeys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil
				}
			}
			return errors.New("unknown host key")
		},
	}}
}

// TestGoGitClientAgainstMirror drives go-git's SSH client against a mirror:
// ls-remote, clone and fetch from the mirror after a go-git push to the
// primary, and a push to the mirror refused.
func TestGoGitClientAgainstMirror(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	dev := p.AddUser(t, "dev", []string{"*"}, []string{"*"})
	n := acceptedNode(t, p, "gogit", mirror.ModeAllProjects)
	p.WaitSynced(t, n, "PROJ/app")
	auth := goGitAuth(dev, p.HostKey.Public, n.HostKey.Public)
	primaryRefs, err := p.Store.Refs(t.Context(), "PROJ", "app")
	require.NoError(t, err)

	listed, err := testutil.GoGitLsRemote(n.SSHURL("PROJ", "app"), auth)
	require.NoError(t, err)
	for name, id := range primaryRefs {
		assert.Equal(t, id, listed[name], name)
	}
	assert.Equal(t, primaryRefs["refs/heads/main"], listed["HEAD"])

	fromMirror, err := git.PlainClone(filepath.Join(t.TempDir(), "m"), false, &git.CloneOptions{URL: n.SSHURL("PROJ", "app"), Auth: auth})
	require.NoError(t, err)
	assert.Equal(t, primaryRefs["refs/heads/main"], testutil.GoGitHead(t, fromMirror))

	// A go-git push to the primary reaches the mirror, and a fetch from the
	// mirror brings it.
	fromPrimary, err := git.PlainClone(filepath.Join(t.TempDir(), "p"), false, &git.CloneOptions{URL: p.SSHURL("PROJ", "app"), Auth: auth})
	require.NoError(t, err)
	next := testutil.GoGitCommitFile(t, fromPrimary, "mirrored.txt", "through the mirror\n", "go-git push")
	require.NoError(t, fromPrimary.Push(&git.PushOptions{Auth: auth}))
	p.WaitSynced(t, n, "PROJ/app")
	require.NoError(t, fromMirror.Fetch(&git.FetchOptions{Auth: auth}))
	fetched, err := fromMirror.Reference("refs/remotes/origin/main", true)
	require.NoError(t, err)
	assert.Equal(t, next, fetched.Hash().String())

	// The mirror is read-only.
	testutil.GoGitCommitFile(t, fromMirror, "no.txt", "no\n", "to the mirror")
	err = fromMirror.Push(&git.PushOptions{Auth: auth, RefSpecs: []config.RefSpec{"HEAD:refs/heads/main"}})
	require.Error(t, err)
	after, err := p.Store.Refs(t.Context(), "PROJ", "app")
	require.NoError(t, err)
	assert.Equal(t, next, after["refs/heads/main"])
}
