package testutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// GoGitLsRemote lists the refs of the repository at url with go-git, as
// `git ls-remote` does: name -> id, HEAD included when it resolves, annotated
// tags with their peeled "^{}" entries.
func GoGitLsRemote(url string, auth transport.AuthMethod) (map[string]string, error) {
	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	refs, err := remote.List(&git.ListOptions{Auth: auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, r := range refs {
		if r.Type() == plumbing.HashReference {
			out[r.Name().String()] = r.Hash().String()
		}
	}
	for _, r := range refs { // HEAD, advertised as a symbolic ref
		if r.Type() == plumbing.SymbolicReference && out[r.Target().String()] != "" {
			out[r.Name().String()] = out[r.Target().String()]
		}
	}
	return out, nil
}

// GoGitCommitFile writes name with content into the worktree of repo, commits it
// with message and returns the commit id; it fails the test on error.
func GoGitCommitFile(t testing.TB, repo *git.Repository, name, content, message string) string {
	t.Helper()
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(wt.Filesystem.Root(), name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add(name); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Test Author", Email: "test@example.com", When: time.Now()}
	id, err := wt.Commit(message, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// GoGitHead returns the id HEAD of repo resolves to; it fails the test on error.
func GoGitHead(t testing.TB, repo *git.Repository) string {
	t.Helper()
	ref, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Hash().String()
}
