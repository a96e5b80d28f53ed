package mesh_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// TestReposFetch mirrors a repository from a real OpenSSH server.
func TestReposFetch(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, r mesh.Repos, root string) {
		ctx := ctxT(t)
		key := testutil.GenerateKey(t, testutil.Ed25519)
		sshd := testutil.StartSshd(t, []*testutil.Key{key})
		known := testutil.KnownHostsLine("127.0.0.1", sshd.Port, sshd.HostKey.Public)
		g := testutil.NewGit(t)
		src := filepath.Join(t.TempDir(), "src.git")
		g.Run("", "clone", "-q", "--bare", testutil.CachedRepo(t, testutil.SmallRepo), src)
		events, err := r.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var last mesh.FetchProgress
		calls := 0
		opts := mesh.FetchOptions{
			URL:        sshd.URL(src),
			PrivateKey: key.PrivatePEM,
			KnownHosts: []byte(known + "\n"),
			Progress: func(p mesh.FetchProgress) {
				mu.Lock()
				last, calls = p, calls+1
				mu.Unlock()
			},
		}
		res, err := r.Fetch(ctx, "MIRROR", "src", opts)
		if err != nil {
			t.Fatal(err)
		}
		want := g.Refs(src)
		if !res.Created || len(res.Updates) != len(want) {
			t.Fatalf("first fetch: created=%v, %d updates, want %d", res.Created, len(res.Updates), len(want))
		}
		for i, u := range res.Updates {
			if u.Old != mesh.ZeroID || want[u.Ref] != u.New || (i > 0 && res.Updates[i-1].Ref >= u.Ref) {
				t.Fatalf("update %d = %+v", i, u)
			}
		}
		mu.Lock()
		if calls == 0 || last.Objects == 0 || last.Objects != last.TotalObjects || last.Bytes == 0 {
			t.Errorf("progress: %d calls, last %+v", calls, last)
		}
		mu.Unlock()
		// One pack: the staging fetch's, moved into the repository.
		if packs, _ := filepath.Glob(filepath.Join(root, "MIRROR", "src.git", "objects", "pack", "*.pack")); len(packs) != 1 {
			t.Errorf("%d packs after the first fetch, want 1: %v", len(packs), packs)
		}
		got, err := r.Refs(ctx, "MIRROR", "src")
		if err != nil {
			t.Fatal(err)
		}
		sameRefs(t, got, want)
		if ev := nextEvent(t, events); ev.Type != mesh.EventCreated {
			t.Fatalf("event = %+v, want repo_created", ev)
		}
		if ev := nextEvent(t, events); ev.Type != mesh.EventRefsChanged || len(ev.Updates) != len(want) {
			t.Fatalf("event = %+v, want one transaction of %d refs", ev, len(want))
		}

		// Change the source: a new commit on main, a deleted branch, a new tag.
		w := filepath.Join(t.TempDir(), "w")
		g.Run("", "clone", "-q", src, w)
		oldMain := want["refs/heads/main"]
		newMain := g.CommitFile(w, "x.txt", "x\n", "more")
		g.Run(w, "push", "-q", "origin", "HEAD:main", ":refs/heads/branch-000", "HEAD:refs/tags/newtag")
		opts.Progress = nil
		res, err = r.Fetch(ctx, "MIRROR", "src", opts)
		if err != nil {
			t.Fatal(err)
		}
		wantUpdates := fmt.Sprintf("refs/heads/branch-000 %s..%s, refs/heads/main %s..%s, refs/tags/newtag %s..%s",
			want["refs/heads/branch-000"][:7], mesh.ZeroID[:7], oldMain[:7], newMain[:7], mesh.ZeroID[:7], newMain[:7])
		if res.Created || updatesString(res.Updates) != wantUpdates {
			t.Fatalf("second fetch: created=%v updates %s\nwant %s", res.Created, updatesString(res.Updates), wantUpdates)
		}
		if ev := nextEvent(t, events); updatesString(ev.Updates) != wantUpdates {
			t.Fatalf("event %s, want %s", updatesString(ev.Updates), wantUpdates)
		}
		// The staging repository negotiated with the repository's refs as haves: only
		// the new commit, its tree and its blob came over (git unpacks so few objects
		// as loose ones), moved in beside the first pack.
		loose, _ := filepath.Glob(filepath.Join(root, "MIRROR", "src.git", "objects", "[0-9a-f][0-9a-f]", "*"))
		packs, _ := filepath.Glob(filepath.Join(root, "MIRROR", "src.git", "objects", "pack", "*.pack"))
		if len(loose) != 3 || len(packs) != 1 {
			t.Errorf("after the second fetch: %d loose objects and %d packs, want 3 and 1: %v", len(loose), len(packs), loose)
		}
		// Nothing changed: no updates, no event.
		if res, err = r.Fetch(ctx, "MIRROR", "src", opts); err != nil || len(res.Updates) != 0 {
			t.Fatalf("idle fetch: %+v, %v", res, err)
		}
		g.Fsck(filepath.Join(root, "MIRROR", "src.git"))

		// A host key that does not match the pin is refused, and so is an empty pin.
		other := testutil.GenerateKey(t, testutil.Ed25519)
		for name, kh := range map[string]string{
			"wrong host key": testutil.KnownHostsLine("127.0.0.1", sshd.Port, other.Public),
			"no host key":    "",
		} {
			bad := opts
			bad.KnownHosts = []byte(kh)
			_, err := r.Fetch(ctx, "MIRROR", "src2", bad)
			if !errors.Is(err, mesh.ErrFetch) || !errors.Is(err, mesh.ErrHostKey) {
				t.Errorf("%s: %v, want host key verification failure", name, err)
			}
		}
		// A key the server does not accept.
		bad := opts
		bad.PrivateKey = other.PrivatePEM
		if _, err := r.Fetch(ctx, "MIRROR", "src2", bad); !errors.Is(err, mesh.ErrFetch) {
			t.Errorf("unauthorised key: %v, want ErrFetch", err)
		}
		for _, u := range []string{"", "-oProxyCommand=touch /tmp/x", "ext::sh -c touch% /tmp/x"} {
			bad := opts
			bad.URL = u
			if _, err := r.Fetch(ctx, "MIRROR", "src2", bad); !errors.Is(err, mesh.ErrFetch) {
				t.Errorf("URL %q: %v, want ErrFetch", u, err)
			}
		}
		// None of the failed first fetches left an empty repository behind.
		if _, err := r.Refs(ctx, "MIRROR", "src2"); !errors.Is(err, mesh.ErrNotFound) {
			t.Errorf("after failed first fetches, MIRROR/src2: %v, want ErrNotFound", err)
		}
		if events, _ := r.Refs(ctx, "MIRROR", "src"); len(events) == 0 {
			t.Error("mirror lost its refs")
		}
	})
}
