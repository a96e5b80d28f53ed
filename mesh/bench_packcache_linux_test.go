package mesh_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
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

// BenchmarkServeSession serves the protocol v2 session of a bare clone of the
// 40,000-object preset (with a bitmap) straight through Store.ServeGit, with
// the client's requests in memory and the answer discarded: the store's own
// CPU per clone (its process and its git children), without a transport or a
// client. "git" runs with both caches off (upload-pack and pack-objects every
// time); "cached" with the response cache warm, where the session runs no git.
//
//	go test -run '^$' -bench BenchmarkServeSession -benchtime 20x ./mesh/
func BenchmarkServeSession(b *testing.B) {
	ctx := ctxT(b)
	src := testutil.CachedRepo(b, testutil.Preset40k)
	cpu := map[string]float64{}
	for _, w := range []struct {
		name string
		cfg  mesh.StoreConfig
	}{{"git", mesh.StoreConfig{PackCacheMaxBytes: -1, NoResponseCache: true}}, {"cached", mesh.StoreConfig{}}} {
		b.Run(w.name, func(b *testing.B) {
			cfg := w.cfg
			cfg.Root, cfg.Logger = b.TempDir(), testLogger(b)
			s, err := mesh.OpenStore(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Fetch(ctx, "BENCH", "big", mesh.FetchOptions{URL: "file://" + src}); err != nil {
				b.Fatal(err)
			}
			dir := filepath.Join(s.Root(), "BENCH", "big.git")
			if _, err := gitexec.Run(ctx, dir, nil, "repack", "-a", "-d", "-q", "--write-bitmap-index"); err != nil {
				b.Fatal(err)
			}
			list, fetch := cloneSession(b, dir)
			req := gitfleet.GitRequest{Service: gitfleet.UploadPack, Repo: gitfleet.RepoName{Project: "BENCH", Slug: "big"}, Protocol: 2}
			serve := func() int64 {
				// As git does: each request once the previous answer is in.
				pr, pw := io.Pipe()
				out := &pktCounter{flushes: make(chan struct{}, 8)}
				go func() {
					<-out.flushes // the capability advertisement
					pw.Write(list)
					<-out.flushes // the ls-refs answer
					pw.Write(fetch)
					<-out.flushes
					pw.Close()
				}()
				var stderr bytes.Buffer
				if err := s.ServeGit(ctx, req, pr, out, &stderr); err != nil {
					b.Fatalf("%v: %s", err, stderr.String())
				}
				pr.Close()
				return out.n
			}
			size := serve() // warms the caches where they are on
			if size < 1<<20 {
				b.Fatalf("the session answered %d bytes, want the whole pack", size)
			}
			self0, children0 := rusage(b)
			b.ResetTimer()
			for range b.N {
				// pack-objects' threads make a pack's deltas (and size) vary a
				// little from run to run.
				if n := serve(); n < size-size/50 || n > size+size/50 {
					b.Fatalf("answered %d bytes, then %d", size, n)
				}
			}
			b.StopTimer()
			self1, children1 := rusage(b)
			cpu[w.name] = (self1 - self0 + children1 - children0).Seconds() / float64(b.N)
			b.ReportMetric(cpu[w.name]*1000, "store-cpu-ms/op")
			if st := s.PackCacheStats(); w.name == "cached" && st.SessionsWithoutGit < int64(b.N) || w.name == "git" && st.SessionsWithoutGit != 0 {
				b.Fatalf("%+v: want every session answered without git", st)
			}
		})
	}
	if cpu["git"] > 0 {
		b.Logf("cached/git store CPU: %.3f", cpu["cached"]/cpu["git"])
	}
}

// cloneSession returns what git clone --bare sends over protocol v2 to the
// repository at dir: ls-refs, then a fetch of every ref.
func cloneSession(b *testing.B, dir string) (list, fetch []byte) {
	var buf bytes.Buffer
	pkt := func(lines ...string) {
		for _, l := range lines {
			switch l {
			case "delim":
				buf.WriteString("0001")
			case "flush":
				buf.WriteString("0000")
			default:
				fmt.Fprintf(&buf, "%04x%s\n", len(l)+5, l)
			}
		}
	}
	pkt("command=ls-refs", "agent=git/2.39.5", "object-format=sha1", "delim", "peel", "symrefs", "unborn",
		"ref-prefix HEAD", "ref-prefix refs/heads/", "ref-prefix refs/tags/", "flush")
	list = bytes.Clone(buf.Bytes())
	buf.Reset()
	out, err := gitexec.Run(context.Background(), dir, nil, "for-each-ref", "--format=%(objectname)")
	if err != nil {
		b.Fatal(err)
	}
	pkt("command=fetch", "agent=git/2.39.5", "object-format=sha1", "delim", "thin-pack", "no-progress", "ofs-delta")
	seen := map[string]bool{}
	for _, oid := range strings.Fields(string(out)) {
		if !seen[oid] {
			seen[oid] = true
			pkt("want " + oid)
		}
	}
	pkt("done", "flush")
	return list, buf.Bytes()
}

// pktCounter counts and discards a pkt-line stream, and signals each
// flush-pkt.
type pktCounter struct {
	n       int64
	hdr     []byte
	skip    int
	flushes chan struct{}
}

func (w *pktCounter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	for q := p; len(q) > 0; {
		if w.skip > 0 {
			k := min(w.skip, len(q))
			w.skip -= k
			q = q[k:]
			continue
		}
		k := min(4-len(w.hdr), len(q))
		w.hdr = append(w.hdr, q[:k]...)
		q = q[k:]
		if len(w.hdr) < 4 {
			break
		}
		v, err := strconv.ParseUint(string(w.hdr), 16, 16)
		w.hdr = w.hdr[:0]
		switch {
		case err != nil:
			return 0, fmt.Errorf("not pkt-line framing: %v", err)
		case v == 0:
			w.flushes <- struct{}{}
		case v >= 4:
			w.skip = int(v) - 4
		}
	}
	return len(p), nil
}
