package mesh_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/gitexec"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// BenchmarkPackCacheStorm runs storms of N (1, 16, 32) concurrent identical bare clones of
// the 40,000-object preset (with a bitmap, as after maintenance) over ServeGit,
// with the pack cache off, on and cold (emptied before each storm: one
// pack-objects, every other clone joining it), and on and warm (every clone a
// hit at the pack level, the response cache off), and with the response cache
// on and warm (the default: every clone's fetch answered whole from the
// cache), and once more for 16 clones without a bitmap. It reports, per storm, wall time and server CPU: the CPU of this process
// (the store and the test's stand-in for an SSH server) and of the store's git
// children, that is everything this process and its reaped children used less
// what each client `git clone` (with its own children: index-pack and the
// transport helper) reports for itself. Run:
//
//	go test -run '^$' -bench BenchmarkPackCacheStorm -benchtime 3x ./mesh/
func BenchmarkPackCacheStorm(b *testing.B) {
	for _, n := range []int{1, 16, 32} {
		b.Run(fmt.Sprintf("clones=%d", n), func(b *testing.B) { benchStorm(b, n, true) })
	}
	// Without a bitmap pack-objects must walk the history, as in a repository
	// that maintenance has not reached yet.
	b.Run("clones=16-nobitmap", func(b *testing.B) { benchStorm(b, 16, false) })
}

func benchStorm(b *testing.B, n int, bitmap bool) {
	ctx := ctxT(b)
	src := testutil.CachedRepo(b, testutil.Preset40k)
	type way struct {
		name      string
		s         *mesh.Store
		g         *testutil.Git
		cold      bool
		wall, cpu time.Duration
	}
	var ways []*way
	for _, w := range []struct {
		name    string
		max     int64
		cold    bool
		answers bool
	}{{"off", -1, false, false}, {"cold", 0, true, false}, {"warm", 0, false, false}, {"answers", 0, false, true}} {
		var s *mesh.Store
		if w.answers {
			s = openResponseStore(b) // the default: the response cache on
		} else {
			s = openCacheStore(b, b.TempDir(), mesh.StoreConfig{PackCacheMaxBytes: w.max})
		}
		if _, err := s.Fetch(ctx, "BENCH", "big", mesh.FetchOptions{URL: "file://" + src}); err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(s.Root(), "BENCH", "big.git")
		args := []string{"repack", "-a", "-d", "-q", "--write-bitmap-index"}
		if !bitmap {
			args = []string{"-c", "repack.writeBitmaps=false", "repack", "-a", "-d", "-q", "--no-write-bitmap-index"}
		}
		if _, err := gitexec.Run(ctx, dir, nil, args...); err != nil {
			b.Fatal(err)
		}
		ways = append(ways, &way{name: w.name, s: s, g: newGit(b, startGitServer(b, s)), cold: w.cold})
	}
	// Warm the warm caches.
	benchOneStorm(b, ways[2].g, 1)
	benchOneStorm(b, ways[3].g, 1)
	out := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, w := range ways {
			if w.cold {
				os.RemoveAll(filepath.Join(mesh.PackCacheDir(w.s), "BENCH"))
			}
			self0, children0 := rusage(b)
			t0 := time.Now()
			clients := benchOneStorm(b, w.g, n, out)
			w.wall += time.Since(t0)
			self1, children1 := rusage(b)
			w.cpu += self1 - self0 + children1 - children0 - clients
		}
	}
	b.StopTimer()
	for _, w := range ways {
		b.ReportMetric(w.wall.Seconds()/float64(b.N), w.name+"-wall-s")
		b.ReportMetric(w.cpu.Seconds()/float64(b.N), w.name+"-servercpu-s")
		st := w.s.PackCacheStats()
		b.Logf("%s: %+v", w.name, st)
	}
	b.ReportMetric(float64(ways[1].cpu)/float64(ways[0].cpu), "cold/off-cpu")
	b.ReportMetric(float64(ways[2].cpu)/float64(ways[0].cpu), "warm/off-cpu")
	b.ReportMetric(float64(ways[3].cpu)/float64(ways[0].cpu), "answers/off-cpu")
	b.ReportMetric(float64(ways[1].wall)/float64(ways[0].wall), "cold/off-wall")
}

// benchOneStorm runs n concurrent bare clones and returns the CPU time the
// clients used (each with its reaped children).
func benchOneStorm(b *testing.B, g *testutil.Git, n int, base ...string) time.Duration {
	dir := b.TempDir()
	if len(base) > 0 {
		dir = base[0]
	}
	var mu sync.Mutex
	var total time.Duration
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		target := filepath.Join(dir, fmt.Sprintf("c%d.git", i))
		os.RemoveAll(target)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := g.Command("", "clone", "-q", "--bare", repoURL("BENCH", "big"), target)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("clone: %v: %s", err, out)
				return
			}
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				mu.Lock()
				total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return total
}

// rusage returns the CPU time of this process and of its reaped children.
func rusage(b *testing.B) (self, children time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return self, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
