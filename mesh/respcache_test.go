package mesh_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
)

// withResponses leaves the response cache on in openCacheStore; the pack
// cache tests run with it off, so that they see every request at the pack
// level.
var withResponses bool

// openResponseStore opens a store with the response cache on (the default).
func openResponseStore(t testing.TB) *mesh.Store {
	t.Helper()
	cfg := mesh.StoreConfig{Root: t.TempDir(), Logger: testLogger(t)}
	s, err := mesh.OpenStore(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// answersWritten waits until the store has kept want answers (an answer is
// kept just after its last byte went to the client, so a clone can end a
// moment before) and returns the stats.
func answersWritten(t testing.TB, s *mesh.Store, want int64) mesh.PackCacheStats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.PackCacheStats()
		if st.ResponsesWritten >= want || time.Now().After(deadline) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cachedAnswers lists the response cache's files.
func cachedAnswers(t testing.TB, s *mesh.Store) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(mesh.PackCacheDir(s), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".resp") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestResponseCache: a v2 clone's answer is kept and served whole to the next
// identical clone (git sees no fetch: no pack cache request at all), a storm
// of clones is correct and runs pack-objects once, other request kinds get
// their own answers, v0 never uses this level, and a push makes the old
// answers unreachable.
func TestResponseCache(t *testing.T) {
	t.Parallel()
	s := openResponseStore(t)
	g := newGit(t, startGitServer(t, s))
	want := seedSpec(t, g, s, "PROJ", "r", stormSpec)
	u := repoURL("PROJ", "r")

	_, got := cloneCheck(t, g, u, 2)
	sameRefs(t, got, want)
	// The capability advertisement, the ls-refs answer and the fetch answer.
	st := answersWritten(t, s, 3)
	if st.Misses != 1 || st.ResponsesWritten != 3 || st.ResponseHits != 0 || len(cachedAnswers(t, s)) != 3 {
		t.Fatalf("after the first clone: %+v, want one pack made and three answers kept", st)
	}
	for _, dir := range storm(t, g, u, 2, 8) {
		sameRefs(t, g.Refs(dir), want)
	}
	st = s.PackCacheStats()
	if st.ResponseHits != 8 || st.ListHits != 8 || st.SessionsWithoutGit != 8 || st.Misses != 1 || st.Hits != 0 || st.Joins != 0 {
		t.Fatalf("after a storm of 8: %+v, want 8 sessions answered whole from the cache and no pack request", st)
	}

	// Shallow and partial clones are other requests with their own answers.
	cloneCheck(t, g, u, 2, "--depth", "1")
	cloneCheck(t, g, u, 2, "--filter", "blob:none")
	answersWritten(t, s, 5)
	if n := len(cachedAnswers(t, s)); n != 5 {
		t.Fatalf("%d cached answers after a shallow and a partial clone, want 5", n)
	}
	cloneCheck(t, g, u, 2, "--depth", "1")
	if st := s.PackCacheStats(); st.ResponseHits != 9 {
		t.Fatalf("the second shallow clone: %+v, want its answer from the cache", st)
	}
	// Protocol v0 goes to git every time (and to the pack level).
	before := s.PackCacheStats()
	cloneCheck(t, g, u, 0)
	if st := s.PackCacheStats(); st.ResponseHits != before.ResponseHits || st.Misses+st.Hits != before.Misses+before.Hits+1 {
		t.Fatalf("a v0 clone: %+v (before %+v), want a pack level request only", st, before)
	}

	// After a push every clone has it: the old answers are not served.
	head := pushCommit(t, g, u, "after")
	before = s.PackCacheStats()
	_, got = cloneCheck(t, g, u, 2)
	if got["refs/heads/main"] != head {
		t.Fatalf("clone after the push has main at %s, want %s", got["refs/heads/main"], head)
	}
	// The capability advertisement does not depend on the refs: it is still
	// served from the cache, and git starts at ls-refs.
	if st := answersWritten(t, s, before.ResponsesWritten+2); st.ResponseHits != before.ResponseHits || st.ListHits != before.ListHits ||
		st.SessionsWithoutGit != before.SessionsWithoutGit || st.ResponsesWritten != before.ResponsesWritten+2 {
		t.Fatalf("after the push: %+v, want no answer served from before it, and new ones kept", st)
	}
	// An incremental fetch that ends its negotiation is cached too, and
	// correct.
	dir, _ := cloneCheck(t, g, u, 2)
	pushCommit(t, g, u, "later")
	for range 2 {
		g.Run(dir, "-c", "protocol.version=2", "fetch", "-q", u, "+refs/heads/*:refs/heads/*")
		if out, err := g.TryRun(dir, "fsck", "--strict"); err != nil {
			t.Fatalf("fsck after the fetch: %v\n%s", err, out)
		}
	}
}

// TestResponseCacheDamaged: a truncated or corrupted cached answer is found
// before a byte of it is sent, removed, and the request served by git.
func TestResponseCacheDamaged(t *testing.T) {
	t.Parallel()
	s := openResponseStore(t)
	g := newGit(t, startGitServer(t, s))
	want := seed(t, g, s, "PROJ", "r")
	u := repoURL("PROJ", "r")
	cloneCheck(t, g, u, 2)
	answersWritten(t, s, 3)
	for i, damage := range []func(path string, data []byte) error{
		func(path string, data []byte) error { return os.WriteFile(path, data[:len(data)/2], 0o644) },
		func(path string, data []byte) error {
			data[len(data)/3] ^= 0x20
			return os.WriteFile(path, data, 0o644)
		},
	} {
		answers := cachedAnswers(t, s)
		if len(answers) != 3 {
			t.Fatalf("cached answers %v, want three", answers)
		}
		fetchAnswer := largest(t, answers) // the packfile's
		data, err := os.ReadFile(fetchAnswer)
		if err != nil {
			t.Fatal(err)
		}
		if err := damage(fetchAnswer, data); err != nil {
			t.Fatal(err)
		}
		_, got := cloneCheck(t, g, u, 2)
		sameRefs(t, got, want)
		st := answersWritten(t, s, int64(i+4))
		if st.Corrupt != int64(i+1) || st.ResponseHits != 0 || st.ResponsesWritten != int64(i+4) || st.ListHits != int64(i+1) {
			t.Fatalf("damage %d: %+v, want it found, and the answer made and kept again", i, st)
		}
	}
	cloneCheck(t, g, u, 2)
	if st := s.PackCacheStats(); st.ResponseHits != 1 {
		t.Fatalf("%+v: want the answer made again to be served", st)
	}
}

// largest returns the largest of files.
func largest(t testing.TB, files []string) string {
	t.Helper()
	best, size := "", int64(-1)
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > size {
			best, size = f, fi.Size()
		}
	}
	return best
}

// TestResponseCacheOff: StoreConfig.NoResponseCache leaves the pack level
// alone.
func TestResponseCacheOff(t *testing.T) {
	t.Parallel()
	cfg := mesh.StoreConfig{Root: t.TempDir(), Logger: testLogger(t), NoResponseCache: true}
	s, err := mesh.OpenStore(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	for range 2 {
		cloneCheck(t, g, repoURL("PROJ", "r"), 2)
	}
	if st := s.PackCacheStats(); st.ResponseHits != 0 || st.ResponsesWritten != 0 || st.Hits != 1 || len(cachedAnswers(t, s)) != 0 {
		t.Fatalf("with the response cache off: %+v", st)
	}
}
