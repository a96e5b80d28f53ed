//go:build unix

package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestPushOptionsAndSignedPushes runs the server with a keyring in its home:
// the log shows each push's options and certificate status, and a repository
// set to require signed pushes refuses an unsigned push and takes a signed one.
func TestPushOptionsAndSignedPushes(t *testing.T) {
	key := testutil.NewGPGKey(t, "Alice Signer", "alice@example.com")
	home := t.TempDir()
	testutil.ImportGPGKeys(t, filepath.Join(gitfleet.Home(home).ConfigDir(), keyringDirName), key)
	n := startNode(t, testutil.ServerOptions{Home: home})
	g, _ := setupUserRepo(t, n)
	g.SetEnv("GNUPGHOME", key.Home)
	g.SetEnv("GIT_CONFIG_COUNT", "1")
	g.SetEnv("GIT_CONFIG_KEY_0", "user.signingKey")
	g.SetEnv("GIT_CONFIG_VALUE_0", key.Email)
	work := filepath.Join(t.TempDir(), "w")
	g.Run(filepath.Dir(work), "init", "-q", work)
	url := n.SSHURL("PROJ", "repo")

	c1 := g.CommitFile(work, "a", "1", "one")
	g.Run(work, "push", "-q", "--signed", "-o", "ci.skip", "-o", "reviewer=bob", url, c1+":refs/heads/main")
	waitFor(t, func() bool { return strings.Contains(n.Stderr.String(), "pushOptions") })
	logs := n.Stderr.String()
	for _, want := range []string{`msg="refs changed" project=PROJ slug=repo refs=1 pushOptions="[ci.skip reviewer=bob]" certStatus=G certNonceStatus=OK certVerified=true certSigner="Alice Signer <alice@example.com>" certKey=` + key.ID} {
		if !strings.Contains(logs, want) {
			t.Fatalf("the log lacks %s:\n%s", want, logs)
		}
	}

	settings := "/rest/api/1.0/projects/PROJ/repos/repo/settings/push"
	var got pushSettingsJSON
	json.Unmarshal(n.MustAPI(200, "GET", settings, nil), &got)
	if got.RequireSignedPush == nil || *got.RequireSignedPush {
		t.Fatalf("settings of a new repository: %+v", got)
	}
	n.MustAPI(400, "PUT", settings, map[string]any{})
	n.MustAPI(404, "PUT", "/rest/api/1.0/projects/PROJ/repos/none/settings/push", map[string]bool{"requireSignedPush": true})
	n.MustAPI(200, "PUT", settings, map[string]bool{"requireSignedPush": true})
	json.Unmarshal(n.MustAPI(200, "GET", settings, nil), &got)
	if got.RequireSignedPush == nil || !*got.RequireSignedPush {
		t.Fatalf("settings after PUT: %+v", got)
	}

	c2 := g.CommitFile(work, "a", "2", "two")
	_, err := g.TryRun(work, "push", url, c2+":refs/heads/main")
	if err == nil || !strings.Contains(err.Error(), "this repository requires signed pushes: use git push --signed") {
		t.Fatalf("unsigned push: %v", err)
	}
	if refs := g.Refs(n.RepoDir("PROJ", "repo")); refs["refs/heads/main"] != c1 {
		t.Fatalf("the refused push changed main: %v", refs)
	}
	g.Run(work, "push", "-q", "--signed", url, c2+":refs/heads/main")
	if refs := g.Refs(n.RepoDir("PROJ", "repo")); refs["refs/heads/main"] != c2 {
		t.Fatalf("the signed push did not arrive: %v", refs)
	}
}
