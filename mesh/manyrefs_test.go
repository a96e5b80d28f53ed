package mesh_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// TestManyRefPushIsOneEvent: a push of many refs without --atomic, in which git
// commits each ref in a transaction of its own, is reported as one
// EventRefsChanged holding every update, in process and through the sidecar; so
// is a push that deletes and moves many refs. The store learns of a push's ref
// updates once, from the post-receive hook, not once per ref (which made such
// pushes cost time quadratic in the number of refs once a subscriber read the
// refs hash per event).
func TestManyRefPushIsOneEvent(t *testing.T) {
	t.Parallel()
	const n = 300
	forEachBackend(t, func(t *testing.T, r mesh.Repos, root string) {
		ctx := ctxT(t)
		if err := r.Create(ctx, "PROJ", "many"); err != nil {
			t.Fatal(err)
		}
		events, err := r.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		g := newGit(t, startGitServer(t, r))
		src := manyRefsSource(t, g, n)
		g.Run(src, "push", "-q", repoURL("PROJ", "many"), "refs/heads/*:refs/heads/*")
		ev := nextRefsChanged(t, events)
		if len(ev.Updates) != n {
			t.Fatalf("the push's event has %d updates, want %d", len(ev.Updates), n)
		}
		want := g.Refs(src)
		for _, u := range ev.Updates {
			if u.Old != mesh.ZeroID || u.New != want[u.Ref] {
				t.Fatalf("update %+v, want %s created at %s", u, u.Ref, want[u.Ref])
			}
		}
		sameRefs(t, refsOf(t, r, "PROJ", "many"), want)

		// Delete the first half, move the second half to a new commit.
		next := g.CommitFile(src, "b", "2", "two")
		args := []string{"push", "-q", repoURL("PROJ", "many")}
		for i := range n {
			if i < n/2 {
				args = append(args, fmt.Sprintf(":refs/heads/b%06d", i))
			} else {
				args = append(args, fmt.Sprintf("+%s:refs/heads/b%06d", next, i))
			}
		}
		g.Run(src, args...)
		ev = nextRefsChanged(t, events)
		if len(ev.Updates) != n {
			t.Fatalf("the second push's event has %d updates, want %d", len(ev.Updates), n)
		}
		for _, u := range ev.Updates {
			deleted := u.Ref < fmt.Sprintf("refs/heads/b%06d", n/2)
			if u.Old != want[u.Ref] || (deleted && u.New != mesh.ZeroID) || (!deleted && u.New != next) {
				t.Fatalf("update %+v: deleted %v, want old %s", u, deleted, want[u.Ref])
			}
		}
		if got := len(refsOf(t, r, "PROJ", "many")); got != n-n/2 {
			t.Fatalf("%d refs after the second push, want %d", got, n-n/2)
		}
		select {
		case ev := <-events:
			t.Fatalf("a third event %+v for two pushes", ev)
		case <-time.After(200 * time.Millisecond):
		}
	})
}

// manyRefsSource is a repository with one commit and n branches pointing at it,
// b000000 to b<n-1>, written as packed refs, and a detached HEAD.
func manyRefsSource(t testing.TB, g *testutil.Git, n int) string {
	dir := filepath.Join(t.TempDir(), "src")
	g.Run(filepath.Dir(dir), "init", "-q", dir)
	commit := g.CommitFile(dir, "a", "1", "one")
	var b strings.Builder
	b.WriteString("# pack-refs with: peeled fully-peeled sorted \n")
	for i := range n {
		fmt.Fprintf(&b, "%s refs/heads/b%06d\n", commit, i)
	}
	if err := os.WriteFile(filepath.Join(dir, ".git", "packed-refs"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Only the n branches: HEAD detached, the first branch gone.
	branch := strings.TrimSpace(g.Run(dir, "symbolic-ref", "HEAD"))
	g.Run(dir, "checkout", "-q", "--detach")
	g.Run(dir, "update-ref", "-d", branch)
	return dir
}

// pktLine frames s as a git pkt-line.
func pktLine(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// TestSilentPusherDoesNotHoldTheLock: a pusher that sends its commands and pack and
// then never reads receive-pack's report does not keep the repository's write
// lock (which receive-pack holds from its pre-receive to its post-receive hook,
// with the report written in between): the store queues the report, the push
// completes on the server, and another push and a clone go through while the
// silent client still has not read a byte.
func TestSilentPusherDoesNotHoldTheLock(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := ctxT(t)
	g := newGit(t, startGitServer(t, s))
	refs := seed(t, g, s, "PROJ", "r")
	commit := refs["refs/heads/main"]
	if commit == "" {
		t.Fatalf("no main in %v", refs)
	}
	// Enough refs that the report (about 25 bytes a ref) is far beyond what a pipe
	// holds.
	const n = 20000
	var req bytes.Buffer
	for i := range n {
		line := fmt.Sprintf("%s %s refs/heads/silent%06d", mesh.ZeroID, commit, i)
		if i == 0 {
			line += "\x00report-status"
		}
		req.WriteString(pktLine(line + "\n"))
	}
	req.WriteString("0000")
	// An empty pack: every object the commands name is there already.
	pack := []byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00")
	sum := sha1.Sum(pack)
	req.Write(pack)
	req.Write(sum[:])

	stdinR, stdinW := io.Pipe()
	out := newStuckWriter()
	done := make(chan error, 1)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		done <- s.ServeGit(cctx, request(gitfleet.ReceivePack, "PROJ/r", nil), stdinR, out, io.Discard)
	}()
	go func() {
		stdinW.Write(req.Bytes())
		stdinW.Close()
	}()
	defer func() {
		cancel()
		out.Close()
		<-done
	}()
	// The silent push has been applied once all its refs are there.
	deadline := time.Now().Add(2 * time.Minute)
	for len(refsOf(t, s, "PROJ", "r")) < len(refs)+n {
		if time.Now().After(deadline) {
			t.Fatalf("the silent client's push did not complete: %d refs", len(refsOf(t, s, "PROJ", "r")))
		}
		time.Sleep(50 * time.Millisecond)
	}
	w := filepath.Join(t.TempDir(), "w")
	pushed := make(chan error, 1)
	go func() {
		if _, err := g.TryRun("", "clone", "-q", "--no-checkout", repoURL("PROJ", "r"), w); err != nil {
			pushed <- err
			return
		}
		_, err := g.TryRun(w, "push", "-q", "origin", commit+":refs/heads/beside")
		pushed <- err
	}()
	select {
	case err := <-pushed:
		if err != nil {
			t.Fatalf("clone and push beside a silent pusher: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("a clone and push waited for a pusher that does not read its report")
	}
	if got := refsOf(t, s, "PROJ", "r")["refs/heads/beside"]; got != commit {
		t.Fatalf("refs/heads/beside = %q, want %s", got, commit)
	}
	testutil.NewGit(t).Fsck(filepath.Join(s.Root(), "PROJ", "r.git"))
}

// TestRefsOfManyRefsFollowPushes: for a repository with enough refs that the
// store keeps them in memory, Refs and RefsHash after each kind of change (a
// push without --atomic of many refs, an atomic push moving and deleting refs, a
// single-ref push, a forced update and a deletion of a packed ref, a mirror
// fetch) equal what a second store, reading the same files, finds.
func TestRefsOfManyRefsFollowPushes(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := ctxT(t)
	g := newGit(t, startGitServer(t, s))
	const n = 1500
	src := manyRefsSource(t, g, n)
	if err := s.Create(ctx, "PROJ", "big"); err != nil {
		t.Fatal(err)
	}
	url := repoURL("PROJ", "big")
	check := func(step string) {
		t.Helper()
		fresh, err := mesh.OpenStore(ctx, mesh.StoreConfig{Root: s.Root(), MaintenanceInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer fresh.Close()
		want := refsOf(t, fresh, "PROJ", "big")
		wantHash, err := fresh.RefsHash(ctx, "PROJ", "big")
		if err != nil {
			t.Fatal(err)
		}
		// Twice: the first read may fill the cache, the second reads it.
		for range 2 {
			sameRefs(t, refsOf(t, s, "PROJ", "big"), want)
			if h, err := s.RefsHash(ctx, "PROJ", "big"); err != nil || h != wantHash {
				t.Fatalf("%s: refs hash %s, %v; from the files %s", step, h, err, wantHash)
			}
		}
		if h := mesh.HashRefs(want); h != wantHash {
			t.Fatalf("%s: HashRefs %s, RefsHash %s", step, h, wantHash)
		}
	}
	g.Run(src, "push", "-q", url, "refs/heads/*:refs/heads/*")
	check("many refs")
	// Pack the refs, as a repository migrated with packed refs has them.
	testutil.NewGit(t).Run(filepath.Join(s.Root(), "PROJ", "big.git"), "pack-refs", "--all")
	s.Close()
	s2, err := mesh.OpenStore(ctx, mesh.StoreConfig{Root: s.Root(), MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	s = s2
	g = newGit(t, startGitServer(t, s))
	check("packed")
	c2 := g.CommitFile(src, "b", "2", "two")
	g.Run(src, "push", "-q", "--atomic", url, "+"+c2+":refs/heads/b000001", ":refs/heads/b000002", c2+":refs/tags/v1")
	check("atomic")
	g.Run(src, "push", "-q", url, c2+":refs/heads/new")
	check("one ref")
	g.Run(src, "push", "-q", url, ":refs/heads/b000003", "+"+c2+":refs/heads/b000004")
	check("delete and force")
	if _, err := s.Fetch(ctx, "PROJ", "big", mesh.FetchOptions{URL: "file://" + filepath.Join(src, ".git")}); err != nil {
		t.Fatal(err)
	}
	check("mirror fetch")
}

// BenchmarkRefsHashAfterPush: the refs hash of a repository of 100,000 loose
// refs after a push of one ref, as the mirror feed asks for it after every push:
// from the store that served the push (its refs in memory) and from a store
// that has to read the files. Run:
//
//	go test -run '^$' -bench RefsHashAfterPush -benchtime 5x ./mesh/
func BenchmarkRefsHashAfterPush(b *testing.B) {
	ctx := ctxT(b)
	s := openStore(b)
	g := newGit(b, startGitServer(b, s))
	src := manyRefsSource(b, g, 100000)
	if err := s.Create(ctx, "PROJ", "big"); err != nil {
		b.Fatal(err)
	}
	url := repoURL("PROJ", "big")
	g.Run(src, "push", "-q", url, "refs/heads/*:refs/heads/*")
	if _, err := s.RefsHash(ctx, "PROJ", "big"); err != nil {
		b.Fatal(err)
	}
	fresh, err := mesh.OpenStore(ctx, mesh.StoreConfig{Root: s.Root(), MaintenanceInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer fresh.Close()
	commit := g.CommitFile(src, "b", "2", "two")
	var cached, files time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		g.Run(src, "push", "-q", url, fmt.Sprintf("%s:refs/heads/n%d", commit, i))
		b.StartTimer()
		t0 := time.Now()
		h1, err := s.RefsHash(ctx, "PROJ", "big")
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		h2, err := fresh.RefsHash(ctx, "PROJ", "big")
		if err != nil {
			b.Fatal(err)
		}
		files += time.Since(t1)
		cached += t1.Sub(t0)
		if h1 != h2 {
			b.Fatalf("hashes differ: %s in memory, %s from the files", h1, h2)
		}
		fresh.Close()
		if fresh, err = mesh.OpenStore(ctx, mesh.StoreConfig{Root: s.Root(), MaintenanceInterval: -1}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(cached.Seconds()/float64(b.N), "memory-s/hash")
	b.ReportMetric(files.Seconds()/float64(b.N), "files-s/hash")
}
