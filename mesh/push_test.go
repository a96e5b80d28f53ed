package mesh_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// requireSigned is an embedder's GitBackend wrapper that requires signed pushes.
type requireSigned struct{ next gitBackend }

func (b requireSigned) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	req.RequireSignedPush = true
	return b.next.ServeGit(ctx, req, stdin, stdout, stderr)
}

// pushFixture is a work tree with one commit, ready to push.
func pushFixture(t *testing.T, g *testutil.Git) (work, commit string) {
	t.Helper()
	dir := t.TempDir()
	g.Run(dir, "init", "-q", "w")
	work = filepath.Join(dir, "w")
	return work, g.CommitFile(work, "a", "1", "one")
}

// refsOf returns the repository's refs through r.
func refsOf(t testing.TB, r mesh.Repos, project, slug string) map[string]string {
	t.Helper()
	refs, err := r.Refs(ctxT(t), project, slug)
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

// nextRefsChanged returns the next event, which must be a refs_changed.
func nextRefsChanged(t *testing.T, events <-chan mesh.Event) mesh.Event {
	t.Helper()
	ev := nextEvent(t, events)
	if ev.Type != mesh.EventRefsChanged {
		t.Fatalf("event = %+v, want refs_changed", ev)
	}
	return ev
}

func TestPushOptions(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, r mesh.Repos, root string) {
		ctx := ctxT(t)
		if err := r.Create(ctx, "PROJ", "opts"); err != nil {
			t.Fatal(err)
		}
		events, err := r.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		g := newGit(t, startGitServer(t, r))
		work, c1 := pushFixture(t, g)
		url := repoURL("PROJ", "opts")

		g.Run(work, "push", "-q", "-o", "ci.skip", "-o", "key=value with spaces", url, c1+":refs/heads/main")
		ev := nextRefsChanged(t, events)
		if ev.Push == nil || strings.Join(ev.Push.Options, "|") != "ci.skip|key=value with spaces" || ev.Push.Cert != nil {
			t.Fatalf("event push = %+v, want the two options and no certificate", ev.Push)
		}
		// A push without options has no Push, and its JSON is what it was.
		c2 := g.CommitFile(work, "a", "2", "two")
		g.Run(work, "push", "-q", url, c2+":refs/heads/main")
		ev = nextRefsChanged(t, events)
		if ev.Push != nil {
			t.Fatalf("event push = %+v, want none", ev.Push)
		}
		if b, _ := json.Marshal(ev); strings.Contains(string(b), "push") {
			t.Fatalf("event JSON %s mentions push", b)
		}

		// Over the limits: refused with a message, and nothing changes.
		before := refsOf(t, r, "PROJ", "opts")
		c3 := g.CommitFile(work, "a", "3", "three")
		var many []string
		for i := 0; i <= mesh.DefaultMaxPushOptions; i++ {
			many = append(many, "-o", "n")
		}
		big := strings.Repeat("x", mesh.DefaultMaxPushOptionsBytes/2+1)
		for _, c := range []struct {
			name, want string
			opts       []string
		}{
			{"too many", "too many push options (33): this server accepts at most 32", many},
			{"too large", "push options too large: this server accepts at most 4096 bytes", []string{"-o", big, "-o", big}},
		} {
			args := append(append([]string{"push"}, c.opts...), url, c3+":refs/heads/main", c3+":refs/heads/other")
			_, err := g.TryRun(work, args...)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "pre-receive hook declined") {
				t.Fatalf("%s: push error = %v, want %q", c.name, err, c.want)
			}
			sameRefs(t, refsOf(t, r, "PROJ", "opts"), before)
		}
		// The refused pushes published nothing: the next event is the next push's.
		g.Run(work, "push", "-q", "-o", "after", url, c3+":refs/heads/main")
		ev = nextRefsChanged(t, events)
		if updatesString(ev.Updates) != "refs/heads/main "+c2[:7]+".."+c3[:7] || ev.Push == nil || len(ev.Push.Options) != 1 {
			t.Fatalf("event = %+v, want the push of main with its option", ev)
		}
	})
}

func TestPushOptionLimitsConfigurable(t *testing.T) {
	t.Parallel()
	s, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: testutil.NewHome(t).Repos, Logger: testLogger(t),
		MaxPushOptions: 2, MaxPushOptionsBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := ctxT(t)
	if err := s.Create(ctx, "PROJ", "r"); err != nil {
		t.Fatal(err)
	}
	g := newGit(t, startGitServer(t, s))
	work, c1 := pushFixture(t, g)
	url := repoURL("PROJ", "r")
	if _, err := g.TryRun(work, "push", "-o", "a", "-o", "b", "-o", "c", url, c1+":refs/heads/main"); err == nil || !strings.Contains(err.Error(), "at most 2") {
		t.Fatalf("three options: %v", err)
	}
	if _, err := g.TryRun(work, "push", "-o", "0123456789a", url, c1+":refs/heads/main"); err == nil || !strings.Contains(err.Error(), "at most 10 bytes") {
		t.Fatalf("eleven bytes: %v", err)
	}
	if len(refsOf(t, s, "PROJ", "r")) != 0 {
		t.Fatal("a refused push wrote a ref")
	}
	g.Run(work, "push", "-q", "-o", "a", "-o", "012345678", url, c1+":refs/heads/main")
	if refsOf(t, s, "PROJ", "r")["refs/heads/main"] != c1 {
		t.Fatal("the push within the limits did not arrive")
	}

	// Negative: push options are not offered at all.
	off, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: testutil.NewHome(t).Repos, MaxPushOptions: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if err := off.Create(ctx, "PROJ", "r"); err != nil {
		t.Fatal(err)
	}
	g = newGit(t, startGitServer(t, off))
	if _, err := g.TryRun(work, "push", "-o", "a", url, c1+":refs/heads/main"); err == nil || !strings.Contains(err.Error(), "does not support push options") {
		t.Fatalf("push options turned off: %v", err)
	}
	if _, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: t.TempDir(), MaxPushOptionsBytes: -1}); err == nil {
		t.Fatal("negative MaxPushOptionsBytes accepted")
	}
}

// signedPushes sets up a signing user and a store that knows their key.
func signedPushes(t *testing.T) (key *testutil.GPGKey, store *mesh.Store) {
	t.Helper()
	key = testutil.NewGPGKey(t, "Push Signer", "signer@example.com")
	root := testutil.NewHome(t).Repos
	s, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: root, Logger: testLogger(t),
		SignedPushKeyring: testutil.GPGKeyring(t, key)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return key, s
}

// signingGit is a git client that signs pushes with key.
func signingGit(t *testing.T, sock string, key *testutil.GPGKey) *testutil.Git {
	g := newGit(t, sock)
	g.SetEnv("GNUPGHOME", key.Home)
	g.SetEnv("GIT_CONFIG_COUNT", "1")
	g.SetEnv("GIT_CONFIG_KEY_0", "user.signingKey")
	g.SetEnv("GIT_CONFIG_VALUE_0", key.Email)
	return g
}

func TestSignedPush(t *testing.T) {
	t.Parallel()
	key, store := signedPushes(t)
	for _, b := range []struct {
		name  string
		repos mesh.Repos
	}{
		{"store", store},
		{"sidecar", sidecarClient(t, store)},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := ctxT(t)
			slug := "signed-" + b.name
			if err := b.repos.Create(ctx, "PROJ", slug); err != nil {
				t.Fatal(err)
			}
			events, err := b.repos.Subscribe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			g := signingGit(t, startGitServer(t, b.repos), key)
			work, c1 := pushFixture(t, g)
			url := repoURL("PROJ", slug)
			g.Run(work, "push", "-q", "--signed", "-o", "ci.skip", url, c1+":refs/heads/main")
			ev := nextRefsChanged(t, events)
			if ev.Slug != slug || ev.Push == nil || ev.Push.Cert == nil {
				t.Fatalf("event = %+v, want one with a certificate", ev)
			}
			c := ev.Push.Cert
			if c.Status != "G" || c.NonceStatus != "OK" || !c.Verified() || c.Signer != key.UserID || c.Key != key.ID || c.Nonce == "" {
				t.Fatalf("certificate = %+v, want a good signature by %s (%s) and nonce OK", c, key.UserID, key.ID)
			}
			for _, want := range []string{"certificate version 0.1\n", "nonce " + c.Nonce + "\n", "push-option ci.skip\n",
				mesh.ZeroID + " " + c1 + " refs/heads/main\n", "-----BEGIN PGP SIGNATURE-----", "-----END PGP SIGNATURE-----"} {
				if !strings.Contains(c.Text, want) {
					t.Fatalf("certificate text lacks %q:\n%s", want, c.Text)
				}
			}
			if strings.Join(ev.Push.Options, "|") != "ci.skip" {
				t.Fatalf("options = %q", ev.Push.Options)
			}
		})
	}
}

func TestSignedPushWithoutKeyring(t *testing.T) {
	t.Parallel()
	key := testutil.NewGPGKey(t, "Unknown Signer", "unknown@example.com")
	s := openStore(t)
	ctx := ctxT(t)
	if err := s.Create(ctx, "PROJ", "r"); err != nil {
		t.Fatal(err)
	}
	events, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := signingGit(t, startGitServer(t, s), key)
	work, c1 := pushFixture(t, g)
	g.Run(work, "push", "-q", "--signed", repoURL("PROJ", "r"), c1+":refs/heads/main")
	ev := nextRefsChanged(t, events)
	if ev.Push == nil {
		t.Fatalf("event = %+v, want a certificate", ev)
	}
	c := ev.Push.Cert
	if c == nil || c.Status != "E" || c.Key != key.ID || c.Signer != "" || c.Verified() || !strings.Contains(c.Text, "BEGIN PGP SIGNATURE") {
		t.Fatalf("certificate = %+v, want an unverified one (E) naming key %s", c, key.ID)
	}
	// The nonce seed is the store's, kept private.
	fi, err := os.Stat(filepath.Join(s.Root(), ".mesh", "push-cert-seed"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("nonce seed file: %v, %v", fi, err)
	}
	// Without a keyring, a repository that requires signed pushes takes none.
	g2 := signingGit(t, startGitServer(t, requireSigned{s}), key)
	c2 := g2.CommitFile(work, "a", "2", "two")
	_, err = g2.TryRun(work, "push", "--signed", repoURL("PROJ", "r"), c2+":refs/heads/main")
	if err == nil || !strings.Contains(err.Error(), "this repository requires signed pushes: the push certificate's signature cannot be checked (key "+key.ID) {
		t.Fatalf("signed push without a keyring: %v", err)
	}
}

func TestRequireSignedPush(t *testing.T) {
	t.Parallel()
	key, store := signedPushes(t)
	stranger := testutil.NewGPGKey(t, "Stranger", "stranger@example.com")
	for _, b := range []struct {
		name  string
		repos mesh.Repos
	}{
		{"store", store},
		{"sidecar", sidecarClient(t, store)},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := ctxT(t)
			slug := "required-" + b.name
			if err := b.repos.Create(ctx, "PROJ", slug); err != nil {
				t.Fatal(err)
			}
			events, err := b.repos.Subscribe(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sock := startGitServer(t, requireSigned{b.repos})
			g := signingGit(t, sock, key)
			work, c1 := pushFixture(t, g)
			url := repoURL("PROJ", slug)

			_, err = g.TryRun(work, "push", url, c1+":refs/heads/main")
			if err == nil || !strings.Contains(err.Error(), "this repository requires signed pushes: use git push --signed") {
				t.Fatalf("unsigned push: %v", err)
			}
			_, err = signingGit(t, sock, stranger).TryRun(work, "push", "--signed", url, c1+":refs/heads/main")
			if err == nil || !strings.Contains(err.Error(), "cannot be checked (key "+stranger.ID+" is not in this server's keyring)") {
				t.Fatalf("push signed by an unknown key: %v", err)
			}
			if refs := refsOf(t, b.repos, "PROJ", slug); len(refs) != 0 {
				t.Fatalf("refused pushes wrote %v", refs)
			}
			g.Run(work, "push", "-q", "--signed", url, c1+":refs/heads/main")
			if refsOf(t, b.repos, "PROJ", slug)["refs/heads/main"] != c1 {
				t.Fatal("the signed push did not arrive")
			}
			ev := nextRefsChanged(t, events)
			if ev.Slug != slug || !ev.Push.Cert.Verified() {
				t.Fatalf("event = %+v, want the signed push", ev)
			}
		})
	}
}

// TestPushHooksInstalledInOlderRepositories: a store opened on the root of an older
// one writes its receive-pack hooks, and a repository made without the current
// reference-transaction hook gets it at its first push.
func TestPushHooksInstalledInOlderRepositories(t *testing.T) {
	t.Parallel()
	root := testutil.NewHome(t).Repos
	s, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := s.Create(ctx, "PROJ", "old"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A repository of an older store has no reference-transaction hook (or an
	// older one), and an older store's root has no receive-pack hooks.
	hook := filepath.Join(root, "PROJ", "old.git", "hooks", "reference-transaction")
	if err := os.Remove(hook); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, ".mesh", "hooks")); err != nil {
		t.Fatal(err)
	}
	s, err = mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events, err := s.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := newGit(t, startGitServer(t, s))
	work, c1 := pushFixture(t, g)
	g.Run(work, "push", "-q", "-o", "first", repoURL("PROJ", "old"), c1+":refs/heads/main")
	if ev := nextRefsChanged(t, events); ev.Push == nil || len(ev.Push.Options) != 1 || ev.Push.Options[0] != "first" {
		t.Fatalf("event = %+v, want the push option", ev)
	}
	for _, h := range []string{hook, filepath.Join(root, ".mesh", "hooks", "pre-receive"), filepath.Join(root, ".mesh", "hooks", "post-receive")} {
		if fi, err := os.Stat(h); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("hook %s: %v, %v", h, fi, err)
		}
	}
}
