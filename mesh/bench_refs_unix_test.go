//go:build unix

package mesh_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// cpuNow returns the CPU time, user and system, of this process and of its
// waited-for children: the store's goroutines and every git and hook process
// of both sides of a push.
func cpuNow(t testing.TB) time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			t.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// BenchmarkManyRefPush pushes n branches in one push without --atomic (git's
// default, as `git push --mirror` of a migrated repository does; the server
// commits each ref in a transaction of its own) to a new repository: plain git
// over file:// (the floor) and the store over ServeGit, interleaved. It reports
// seconds per push and CPU seconds per push (both sides, with every hook) for
// each, and the ratio store/file. The sizes are 1,000 and 10,000 refs, and
// 100,000 with GITFLEET_BENCH_REFS=100000 (any list, comma-separated). Run:
//
//	go test -run '^$' -bench BenchmarkManyRefPush -benchtime 1x ./mesh/
func BenchmarkManyRefPush(b *testing.B) {
	sizes := []int{1000, 10000}
	if v := os.Getenv("GITFLEET_BENCH_REFS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("GITFLEET_BENCH_REFS: %q is not a count", f)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("refs=%d", n), func(b *testing.B) {
			ctx := ctxT(b)
			s := openStore(b)
			plain := testutil.NewGit(b)
			remote := newGit(b, startGitServer(b, s))
			src := manyRefsSource(b, plain, n)
			var fileWall, storeWall, fileCPU, storeCPU time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bare := filepath.Join(b.TempDir(), "plain.git")
				plain.Run("", "init", "-q", "--bare", bare)
				slug := "r" + strconv.Itoa(i)
				if err := s.Create(ctx, "BENCH", slug); err != nil {
					b.Fatal(err)
				}
				t0, c0 := time.Now(), cpuNow(b)
				plain.Run(src, "push", "-q", "file://"+bare, "refs/heads/*:refs/heads/*")
				t1, c1 := time.Now(), cpuNow(b)
				remote.Run(src, "push", "-q", repoURL("BENCH", slug), "refs/heads/*:refs/heads/*")
				t2, c2 := time.Now(), cpuNow(b)
				fileWall += t1.Sub(t0)
				storeWall += t2.Sub(t1)
				fileCPU += c1 - c0
				storeCPU += c2 - c1
				b.StopTimer()
				refs := refsOf(b, s, "BENCH", slug)
				if len(refs) < n {
					b.Fatalf("the store holds %d refs after the push, want %d", len(refs), n)
				}
				s.Delete(ctx, "BENCH", slug)
				b.StartTimer()
			}
			b.StopTimer()
			per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
			b.ReportMetric(per(fileWall), "file-s/push")
			b.ReportMetric(per(storeWall), "store-s/push")
			b.ReportMetric(per(fileCPU), "file-cpu-s/push")
			b.ReportMetric(per(storeCPU), "store-cpu-s/push")
			b.ReportMetric(float64(storeWall)/float64(fileWall), "store/file")
		})
	}
}
