package mesh_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// openCacheStore opens a store on root with the given pack cache settings;
// its response cache is off unless withResponses is set, so that these tests
// see every request at the pack level.
func openCacheStore(t testing.TB, root string, cfg mesh.StoreConfig) *mesh.Store {
	t.Helper()
	if !withResponses {
		cfg.NoResponseCache = true
	}
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
	dir := mesh.PackCacheDir(s)
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && p == filepath.Join(dir, "tmp") {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".pack") {
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

// TestPackCacheDamaged: a truncated and a corrupted cached pack are detected
// before a byte is served, removed and made again; the clones are correct.
func TestPackCacheDamaged(t *testing.T) {
	t.Parallel()
	s := openCacheStore(t, t.TempDir(), mesh.StoreConfig{})
	g := newGit(t, startGitServer(t, s))
	want := seed(t, g, s, "PROJ", "r")
	u := repoURL("PROJ", "r")
	cloneCheck(t, g, u, 2)
	damage := []struct {
		name string
		do   func(path string) error
	}{
		{"truncated", func(path string) error {
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			return os.Truncate(path, fi.Size()/2)
		}},
		{"corrupted", func(path string) error {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			data[len(data)/2] ^= 0x55
			return os.WriteFile(path, data, 0o644)
		}},
	}
	for i, d := range damage {
		packs := cachedPacks(t, s)
		if len(packs) != 1 {
			t.Fatalf("%s: cached packs %v, want one", d.name, packs)
		}
		if err := d.do(packs[0]); err != nil {
			t.Fatal(err)
		}
		_, got := cloneCheck(t, g, u, 2)
		sameRefs(t, got, want)
		st := s.PackCacheStats()
		if st.Corrupt != int64(i+1) || st.Misses != int64(i+2) || st.Hits != 0 || st.Entries != 1 {
			t.Fatalf("%s: stats %+v, want %d corrupt, %d misses, one entry", d.name, st, i+1, i+2)
		}
	}
	cloneCheck(t, g, u, 2)
	if st := s.PackCacheStats(); st.Hits != 1 {
		t.Fatalf("stats %+v, want the regenerated pack served", st)
	}
}

// TestPackCacheWriteFailure: when the cache cannot be written (a full disk,
// or a pack larger than the cache) packs are served uncached, to every
// request of a storm alike, and nothing is kept.
func TestPackCacheWriteFailure(t *testing.T) {
	t.Parallel()
	t.Run("disk full", func(t *testing.T) {
		t.Parallel()
		s := openCacheStore(t, t.TempDir(), mesh.StoreConfig{})
		g := newGit(t, startGitServer(t, s))
		want := seedSpec(t, g, s, "PROJ", "r", stormSpec)
		mesh.SetPackCacheWriteFailure(s, syscall.ENOSPC)
		for _, dir := range storm(t, g, repoURL("PROJ", "r"), 2, 4) {
			sameRefs(t, g.Refs(dir), want)
		}
		st := s.PackCacheStats()
		if st.Bypassed == 0 || st.Bypassed != st.Misses || st.Entries != 0 || len(cachedPacks(t, s)) != 0 {
			t.Fatalf("stats %+v, want every pack bypassed and none kept", st)
		}
		mesh.SetPackCacheWriteFailure(s, nil)
		cloneCheck(t, g, repoURL("PROJ", "r"), 2)
		if st := s.PackCacheStats(); st.Entries != 1 {
			t.Fatalf("stats %+v, want the pack kept once writing works", st)
		}
	})
	t.Run("too big", func(t *testing.T) {
		t.Parallel()
		s := openCacheStore(t, t.TempDir(), mesh.StoreConfig{PackCacheMaxBytes: 4096})
		g := newGit(t, startGitServer(t, s))
		want := seedSpec(t, g, s, "PROJ", "r", stormSpec)
		for _, dir := range storm(t, g, repoURL("PROJ", "r"), 0, 4) {
			sameRefs(t, g.Refs(dir), want)
		}
		st := s.PackCacheStats()
		if st.Bypassed == 0 || st.Bypassed != st.Misses || st.Entries != 0 || len(cachedPacks(t, s)) != 0 {
			t.Fatalf("stats %+v, want every pack bypassed and none kept", st)
		}
	})
}

// TestPackCacheEvictionAndRestart: the cache survives a restart (a second
// store on the same root serves the first one's packs), and least recently
// used packs are evicted to keep it under its size limit.
func TestPackCacheEvictionAndRestart(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s1 := openCacheStore(t, root, mesh.StoreConfig{})
	g := newGit(t, startGitServer(t, s1))
	want := seed(t, g, s1, "PROJ", "r")
	u := repoURL("PROJ", "r")
	cloneCheck(t, g, u, 2)
	full := s1.PackCacheStats().BytesOnDisk
	s1.Close()

	limit := full + full/2
	s2 := openCacheStore(t, root, mesh.StoreConfig{PackCacheMaxBytes: limit})
	g = newGit(t, startGitServer(t, s2))
	if st := s2.PackCacheStats(); st.Entries != 1 || st.BytesOnDisk != full {
		t.Fatalf("reopened: stats %+v, want the first store's pack", st)
	}
	_, got := cloneCheck(t, g, u, 2)
	sameRefs(t, got, want)
	if st := s2.PackCacheStats(); st.Hits != 1 || st.Misses != 0 {
		t.Fatalf("reopened: stats %+v, want a hit", st)
	}
	for depth := 1; depth <= 4; depth++ {
		cloneCheck(t, g, u, 2, "--depth", fmt.Sprint(depth))
		st := s2.PackCacheStats()
		var onDisk int64
		for _, p := range cachedPacks(t, s2) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			onDisk += fi.Size()
		}
		if onDisk > limit || st.BytesOnDisk != onDisk || st.Entries != int64(len(cachedPacks(t, s2))) {
			t.Fatalf("depth %d: %d bytes on disk, stats %+v, limit %d", depth, onDisk, st, limit)
		}
	}
	if st := s2.PackCacheStats(); st.Evictions == 0 {
		t.Fatalf("stats %+v, want evictions", st)
	}
	if err := s2.Delete(ctxT(t), "PROJ", "r"); err != nil {
		t.Fatal(err)
	}
	if st := s2.PackCacheStats(); st.Entries != 0 || len(cachedPacks(t, s2)) != 0 {
		t.Fatalf("after Delete: stats %+v, want no packs", st)
	}
}

// TestPackCacheConcurrencyBound: distinct requests for one repository run at
// most MaxPackObjects pack-objects at once; the others wait in line and are
// served correctly.
func TestPackCacheConcurrencyBound(t *testing.T) {
	t.Parallel()
	s := openCacheStore(t, t.TempDir(), mesh.StoreConfig{MaxPackObjects: 1})
	g := newGit(t, startGitServer(t, s))
	seedSpec(t, g, s, "PROJ", "r", stormSpec)
	const n = 6
	base := t.TempDir()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := filepath.Join(base, fmt.Sprintf("c%d.git", i))
			if errs[i] = clone(g, dir, repoURL("PROJ", "r"), 2, "--depth", fmt.Sprint(i+1)); errs[i] == nil {
				out, err := g.TryRun(dir, "rev-list", "--count", "main")
				if err == nil && strings.TrimSpace(out) != fmt.Sprint(i+1) {
					err = fmt.Errorf("depth %d clone has %s commits", i+1, strings.TrimSpace(out))
				}
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := s.PackCacheStats()
	if peak := mesh.PackObjectsPeak(s); peak != 1 || st.Misses != n {
		t.Fatalf("peak %d pack-objects at once, stats %+v; want 1 and %d misses", peak, st, n)
	}
	t.Logf("stats %+v", st)
}

// TestPackCacheThroughSidecar: clones through Client -> Server -> Store use the
// cache, and the Client reports the sidecar store's counters, which
// WritePrometheus renders.
func TestPackCacheThroughSidecar(t *testing.T) {
	t.Parallel()
	s := openCacheStore(t, t.TempDir(), mesh.StoreConfig{})
	c := sidecarClient(t, s).(*mesh.Client)
	g := newGit(t, startGitServer(t, c))
	want := seed(t, g, c, "PROJ", "r")
	for i := 0; i < 2; i++ {
		_, got := cloneCheck(t, g, repoURL("PROJ", "r"), 2)
		sameRefs(t, got, want)
	}
	st, err := c.PackCacheStats(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if st != s.PackCacheStats() || st.Misses != 1 || st.Hits != 1 {
		t.Fatalf("client stats %+v, store %+v: want one miss and one hit", st, s.PackCacheStats())
	}
	var b strings.Builder
	if err := st.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"gitfleet_pack_cache_hits_total 1\n", "gitfleet_pack_cache_misses_total 1\n",
		"gitfleet_pack_cache_entries 1\n", "# TYPE gitfleet_pack_cache_bytes gauge\n",
		fmt.Sprintf("gitfleet_pack_cache_bytes %d\n", st.BytesOnDisk)} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("Prometheus text lacks %q:\n%s", line, b.String())
		}
	}
}
