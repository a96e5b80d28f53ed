package mesh_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// openCacheStore opens a store on root with the given pack cache settings.
func openCacheStore(t testing.TB, root string, cfg mesh.StoreConfig) *mesh.Store {
	t.Helper()
	cfg.Root = root
	cfg.Logger = testLogger(t)
	s, err := mesh.OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// cachedPacks lists the pack files in the store's cache.
func cachedPacks(t testing.TB, s *mesh.Store) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(mesh.PackCacheDir(s), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".pack") && !strings.Contains(p, "/tmp/") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// clone clones url into a new bare repository with extra arguments and checks
// it with fsck; it is safe in any goroutine.
func clone(g *testutil.Git, dir, url string, proto int, extra ...string) error {
	args := append([]string{"-c", fmt.Sprintf("protocol.version=%d", proto), "clone", "-q", "--bare"}, extra...)
	args = append(args, url, dir)
	if out, err := g.TryRun("", args...); err != nil {
		return fmt.Errorf("clone: %v: %s", err, out)
	}
	if out, err := g.TryRun(dir, "fsck", "--strict", "--no-dangling"); err != nil {
		return fmt.Errorf("fsck: %v: %s", err, out)
	}
	return nil
}

// cloneCheck is clone into a fresh directory, returning the clone's refs.
func cloneCheck(t testing.TB, g *testutil.Git, url string, proto int, extra ...string) (string, map[string]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c.git")
	if err := clone(g, dir, url, proto, extra...); err != nil {
		t.Fatal(err)
	}
	return dir, g.Refs(dir)
}

// stormSpec is a repository big enough that pack-objects takes a while, so
// that the clones of a storm overlap.
var stormSpec = testutil.RepoSpec{Commits: 300, FilesPerCommit: 10, FileSize: 400, Dirs: 10, Branches: 5, Tags: 5, Seed: 21}

// seedSpec creates project/slug and pushes a repository built from spec into it.
func seedSpec(t *testing.T, g *testutil.Git, r mesh.Repos, project, slug string, spec testutil.RepoSpec) map[string]string {
	t.Helper()
	if err := r.Create(ctxT(t), project, slug); err != nil {
		t.Fatal(err)
	}
	src := testutil.CachedRepo(t, spec)
	g.Run(src, "push", "-q", "--mirror", repoURL(project, slug))
	return g.Refs(src)
}

// storm runs n concurrent clones of url and returns their directories.
func storm(t *testing.T, g *testutil.Git, url string, proto, n int, extra ...string) []string {
	t.Helper()
	dirs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	base := t.TempDir()
	for i := range n {
		dirs[i] = filepath.Join(base, fmt.Sprintf("c%d.git", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = clone(g, dirs[i], url, proto, extra...)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return dirs
}

func TestPackCacheClone(t *testing.T) {
	t.Parallel()
	for _, proto := range []int{0, 2} {
		t.Run(fmt.Sprintf("v%d", proto), func(t *testing.T) {
			t.Parallel()
			s := openCacheStore(t, t.TempDir(), mesh.StoreConfig{})
			g := newGit(t, startGitServer(t, s))
			want := seed(t, g, s, "PROJ", "r")
			for i := 0; i < 2; i++ {
				_, got := cloneCheck(t, g, repoURL("PROJ", "r"), proto)
				sameRefs(t, got, want)
			}
			st := s.PackCacheStats()
			if !st.Enabled || st.Misses != 1 || st.Hits != 1 || st.Entries != 1 || st.BytesOnDisk == 0 || st.BytesServed != st.BytesOnDisk {
				t.Fatalf("stats %+v, want one miss, one hit, one entry", st)
			}
		})
	}
}

// TestPackCacheStorm: 16 concurrent identical clones run pack-objects once; the
// others stream the same pack, while it is made or from the cache, and every
// clone is complete and fsck-clean with the same refs.
func TestPackCacheStorm(t *testing.T) {
	t.Parallel()
	for _, proto := range []int{0, 2} {
		t.Run(fmt.Sprintf("v%d", proto), func(t *testing.T) {
			s := openCacheStore(t, t.TempDir(), mesh.StoreConfig{})
			g := newGit(t, startGitServer(t, s))
			want := seedSpec(t, g, s, "PROJ", "r", stormSpec)
			const n = 16
			for _, dir := range storm(t, g, repoURL("PROJ", "r"), proto, n) {
				sameRefs(t, g.Refs(dir), want)
			}
			st := s.PackCacheStats()
			t.Logf("stats %+v", st)
			if st.Misses != 1 || st.Hits+st.Joins != n-1 || st.Entries != 1 {
				t.Fatalf("stats %+v: want 1 miss and %d hits or joins", st, n-1)
			}
			if st.BytesServed != (n-1)*st.BytesOnDisk {
				t.Fatalf("stats %+v: bytes served is not %d packs", st, n-1)
			}
		})
	}
}

// pushCommit pushes one new commit on main to url from a fresh work tree and
// returns its id.
func pushCommit(t *testing.T, g *testutil.Git, url, name string) string {
	t.Helper()
	wt := filepath.Join(t.TempDir(), "wt")
	g.Run("", "clone", "-q", url, wt)
	id := g.CommitFile(wt, name, "content of "+name+"\n", "add "+name)
	g.Run(wt, "push", "-q", "origin", "HEAD:main")
	return id
}

// TestPackCachePushDuringStorm: a push in the middle of a storm changes the
// key, so every clone started after the push returned has the new commit, and
// each clone is entirely the old or the new state.
func TestPackCachePushDuringStorm(t *testing.T) {
	t.Parallel()
	for _, proto := range []int{0, 2} {
		t.Run(fmt.Sprintf("v%d", proto), func(t *testing.T) {
			s := openCacheStore(t, t.TempDir(), mesh.StoreConfig{})
			g := newGit(t, startGitServer(t, s))
			url := repoURL("PROJ", "r")
			old := seedSpec(t, g, s, "PROJ", "r", stormSpec)
			const n = 8
			base := t.TempDir()
			dirs := make([]string, 2*n)
			errs := make([]error, 2*n)
			var wg sync.WaitGroup
			start := func(i int) {
				dirs[i] = filepath.Join(base, fmt.Sprintf("c%d.git", i))
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = clone(g, dirs[i], url, proto)
				}()
			}
			for i := range n {
				start(i)
			}
			id := pushCommit(t, g, url, "pushed.txt")
			for i := n; i < 2*n; i++ {
				start(i)
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("clone %d: %v", i, err)
				}
			}
			for i, dir := range dirs {
				got := g.Refs(dir)
				if got["refs/heads/main"] == id {
					continue // the new state: main moved, the rest as before
				}
				if i >= n {
					t.Fatalf("clone %d, started after the push, has main %s, want %s", i, got["refs/heads/main"], id)
				}
				sameRefs(t, got, old)
			}
			t.Logf("stats %+v", s.PackCacheStats())
		})
	}
}

// TestPackCacheRequestKinds: shallow, partial and incremental requests each get
// an entry of their own, served again to the same request only, with correct
// results.
func TestPackCacheRequestKinds(t *testing.T) {
	t.Parallel()
	for _, proto := range []int{0, 2} {
		t.Run(fmt.Sprintf("v%d", proto), func(t *testing.T) {
			s := openCacheStore(t, t.TempDir(), mesh.StoreConfig{})
			g := newGit(t, startGitServer(t, s))
			want := seed(t, g, s, "PROJ", "r")
			u := repoURL("PROJ", "r")
			entries := func() int64 { return s.PackCacheStats().Entries }
			check := func(name string, wantEntries, wantHits int64) {
				t.Helper()
				st := s.PackCacheStats()
				if st.Entries != wantEntries || st.Hits != wantHits {
					t.Fatalf("%s: stats %+v, want %d entries and %d hits", name, st, wantEntries, wantHits)
				}
			}
			// Full clones.
			full1, got := cloneCheck(t, g, u, proto)
			sameRefs(t, got, want)
			full2, _ := cloneCheck(t, g, u, proto)
			check("full", 1, 1)
			// Shallow.
			for i := 0; i < 2; i++ {
				dir, _ := cloneCheck(t, g, u, proto, "--depth", "1")
				if n := strings.TrimSpace(g.Run(dir, "rev-list", "--count", "main")); n != "1" {
					t.Fatalf("shallow clone has %s commits on main, want 1", n)
				}
			}
			check("shallow", 2, 2)
			// Partial: no blobs.
			for i := 0; i < 2; i++ {
				dir, got := cloneCheck(t, g, u, proto, "--filter=blob:none")
				sameRefs(t, got, want)
				missing := g.Run(dir, "rev-list", "--objects", "--missing=print", "--all")
				if !strings.Contains(missing, "\n?") && !strings.HasPrefix(missing, "?") {
					t.Fatal("partial clone has every blob")
				}
			}
			check("partial", 3, 3)
			if e := entries(); e != 3 {
				t.Fatalf("entries %d", e)
			}
			// Incremental: two identical clones fetch the same new commit.
			id := pushCommit(t, g, u, "new.txt")
			for _, dir := range []string{full1, full2} {
				g.Run(dir, "-c", fmt.Sprintf("protocol.version=%d", proto), "fetch", "-q", u, "+refs/heads/*:refs/heads/*")
				if got := strings.TrimSpace(g.Run(dir, "rev-parse", "main")); got != id {
					t.Fatalf("fetched main %s, want %s", got, id)
				}
				g.Fsck(dir)
			}
			// pushCommit's clone was a hit too (the state had not changed),
			// the first fetch a miss, the second a hit.
			st := s.PackCacheStats()
			if st.Hits != 5 || st.Misses != 4 || st.Entries != 4 {
				t.Fatalf("incremental: stats %+v, want 4 misses, 5 hits, 4 entries", st)
			}
		})
	}
}
