package mesh_test

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// backend opens a fresh mesh.Repos; root is the directory the repositories live in,
// for fsck. Every test in this file runs against each backend, so the sidecar client
// is held to exactly the store's behaviour.
type backend struct {
	name string
	open func(t *testing.T) (r mesh.Repos, root string)
}

func backends() []backend {
	return []backend{
		{"store", func(t *testing.T) (mesh.Repos, string) {
			s := openStore(t)
			return s, s.Root()
		}},
		{"sidecar", openSidecarBackend},
	}
}

func forEachBackend(t *testing.T, f func(t *testing.T, r mesh.Repos, root string)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			r, root := b.open(t)
			f(t, r, root)
		})
	}
}

// seed creates project/slug in r and pushes the SmallRepo fixture into it; it
// returns the fixture's refs.
func seed(t *testing.T, g *testutil.Git, r mesh.Repos, project, slug string) map[string]string {
	t.Helper()
	if err := r.Create(ctxT(t), project, slug); err != nil {
		t.Fatal(err)
	}
	src := testutil.CachedRepo(t, testutil.SmallRepo)
	g.Run(src, "push", "-q", "--mirror", repoURL(project, slug))
	return g.Refs(src)
}

func sameRefs(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d refs, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("ref %s = %q, want %q", k, got[k], v)
		}
	}
}

func TestReposRealGit(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, r mesh.Repos, root string) {
		ctx := ctxT(t)
		g := newGit(t, startGitServer(t, r))
		want := seed(t, g, r, "PROJ", "repo")
		got, err := r.Refs(ctx, "PROJ", "repo")
		if err != nil {
			t.Fatal(err)
		}
		sameRefs(t, got, want)
		hash, err := r.RefsHash(ctx, "PROJ", "repo")
		if err != nil || hash != mesh.HashRefs(want) {
			t.Fatalf("RefsHash = %s, %v; want %s", hash, err, mesh.HashRefs(want))
		}
		url := repoURL("PROJ", "repo")
		work := t.TempDir()

		for _, v := range []string{"0", "1", "2"} {
			t.Run("clone-v"+v, func(t *testing.T) {
				dir := filepath.Join(work, "bare-v"+v)
				g.Run(work, "-c", "protocol.version="+v, "clone", "-q", "--bare", url, dir)
				sameRefs(t, g.Refs(dir), want)
				g.Fsck(dir)
			})
		}
		t.Run("shallow", func(t *testing.T) {
			dir := filepath.Join(work, "shallow")
			g.Run(work, "clone", "-q", "--depth", "1", url, dir)
			if n := strings.TrimSpace(g.Run(dir, "rev-list", "--count", "HEAD")); n != "1" {
				t.Fatalf("shallow clone has %s commits", n)
			}
			if _, err := os.Stat(filepath.Join(dir, ".git", "shallow")); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("partial", func(t *testing.T) {
			dir := filepath.Join(work, "partial")
			g.Run(work, "clone", "-q", "--bare", "--filter=blob:none", url, dir)
			missing := 0
			for _, l := range strings.Split(g.Run(dir, "rev-list", "--objects", "--missing=print", "--all"), "\n") {
				if strings.HasPrefix(l, "?") {
					missing++
				}
			}
			if missing == 0 {
				t.Fatal("partial clone holds every blob: the filter was not applied")
			}
			if p := strings.TrimSpace(g.Run(dir, "config", "remote.origin.promisor")); p != "true" {
				t.Fatalf("remote.origin.promisor = %q", p)
			}
			// Reading a file fetches its blob lazily through another upload-pack.
			g.Run(dir, "cat-file", "-p", "HEAD:"+strings.Fields(g.Run(dir, "ls-tree", "-r", "--name-only", "HEAD"))[0])
		})
		t.Run("archive", func(t *testing.T) {
			out := filepath.Join(work, "a.tar")
			g.Run(work, "archive", "--remote="+url, "-o", out, "main")
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			tr := tar.NewReader(f)
			files := 0
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if h.Typeflag == tar.TypeReg {
					files++
				}
			}
			src := testutil.CachedRepo(t, testutil.SmallRepo)
			if want := len(strings.Fields(g.Run(src, "ls-tree", "-r", "--name-only", "main"))); files != want {
				t.Fatalf("archive holds %d files, want %d", files, want)
			}
		})
		t.Run("push-fetch-delete", func(t *testing.T) {
			a, b := filepath.Join(work, "a"), filepath.Join(work, "b")
			g.Run(work, "clone", "-q", url, a)
			g.Run(work, "clone", "-q", url, b)
			id := g.CommitFile(a, "new.txt", "new\n", "add new")
			g.Run(a, "push", "-q", "origin", "HEAD:refs/heads/main", "HEAD:refs/heads/feature")
			g.Run(b, "fetch", "-q", "origin")
			if got := strings.TrimSpace(g.Run(b, "rev-parse", "origin/feature")); got != id {
				t.Fatalf("fetched feature = %s, want %s", got, id)
			}
			g.Run(a, "push", "-q", "origin", ":refs/heads/feature")
			refs, err := r.Refs(ctx, "PROJ", "repo")
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := refs["refs/heads/feature"]; ok || refs["refs/heads/main"] != id {
				t.Fatalf("after push and delete: %v", refs)
			}
			// A non-fast-forward push is refused and changes nothing.
			g.Run(b, "reset", "-q", "--hard", "HEAD~1")
			g.CommitFile(b, "other.txt", "other\n", "diverge")
			if _, err := g.TryRun(b, "push", "-q", "origin", "HEAD:refs/heads/main"); err == nil {
				t.Fatal("non-fast-forward push was accepted")
			}
			refs, _ = r.Refs(ctx, "PROJ", "repo")
			if refs["refs/heads/main"] != id {
				t.Fatalf("refused push changed main to %s", refs["refs/heads/main"])
			}
		})
		g.Fsck(filepath.Join(root, "PROJ", "repo.git"))
	})
}

// nextEvent returns the next event that is not of an ignored type, failing the test
// after a generous timeout (a guard against hanging, not a timing assertion).
func nextEvent(t *testing.T, ch <-chan mesh.Event) mesh.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(60 * time.Second):
		t.Fatal("no event")
	}
	return mesh.Event{}
}

func updatesString(us []mesh.RefUpdate) string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = fmt.Sprintf("%s %s..%s", u.Ref, u.Old[:7], u.New[:7])
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

func TestReposEvents(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, r mesh.Repos, root string) {
		ctx := ctxT(t)
		events, err := r.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		g := newGit(t, startGitServer(t, r))
		if err := r.Create(ctx, "PROJ", "ev"); err != nil {
			t.Fatal(err)
		}
		ev := nextEvent(t, events)
		if ev.Type != mesh.EventCreated || ev.Project != "PROJ" || ev.Slug != "ev" {
			t.Fatalf("first event = %+v", ev)
		}
		seq := ev.Seq
		expect := func(want string) mesh.Event {
			t.Helper()
			ev := nextEvent(t, events)
			seq++
			if ev.Seq != seq {
				t.Errorf("event seq = %d, want %d", ev.Seq, seq)
			}
			if ev.Type != mesh.EventRefsChanged || ev.Project != "PROJ" || ev.Slug != "ev" {
				t.Fatalf("event = %+v, want refs_changed", ev)
			}
			if got := updatesString(ev.Updates); got != want {
				t.Fatalf("event updates = %s\nwant %s", got, want)
			}
			return ev
		}
		work := t.TempDir()
		g.Run(work, "init", "-q", "w")
		w := filepath.Join(work, "w")
		c1 := g.CommitFile(w, "a", "1", "one")
		c2 := g.CommitFile(w, "a", "2", "two")
		z := mesh.ZeroID[:7]
		url := repoURL("PROJ", "ev")
		// An atomic push of three refs is one transaction.
		g.Run(w, "push", "-q", "--atomic", url, c1+":refs/heads/a", c2+":refs/heads/main", c2+":refs/tags/t")
		expect(fmt.Sprintf("refs/heads/a %s..%s, refs/heads/main %s..%s, refs/tags/t %s..%s", z, c1[:7], z, c2[:7], z, c2[:7]))
		// A forced update and a deletion.
		g.Run(w, "push", "-q", "--atomic", url, "+"+c2+":refs/heads/a", ":refs/tags/t")
		expect(fmt.Sprintf("refs/heads/a %s..%s, refs/tags/t %s..%s", c1[:7], c2[:7], c2[:7], z))
		// Without --atomic, git 2.39's receive-pack commits each ref on its own,
		// and the store reports the push's updates together (in the order the
		// client sent them), from its post-receive hook.
		c3 := g.CommitFile(w, "a", "3", "three")
		g.Run(w, "push", "-q", url, c3+":refs/heads/b", c3+":refs/heads/main")
		expect(fmt.Sprintf("refs/heads/b %s..%s, refs/heads/main %s..%s", z, c3[:7], c2[:7], c3[:7]))
		if err := r.Delete(ctx, "PROJ", "ev"); err != nil {
			t.Fatal(err)
		}
		if ev := nextEvent(t, events); ev.Type != mesh.EventDeleted || ev.Seq != seq+1 {
			t.Fatalf("event = %+v, want repo_deleted", ev)
		}
	})
}

func TestReposConcurrentPushEvents(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, r mesh.Repos, root string) {
		ctx := ctxT(t)
		events, err := r.Subscribe(ctx)
		if err != nil {
			t.Fatal(err)
		}
		g := newGit(t, startGitServer(t, r))
		if err := r.Create(ctx, "PROJ", "conc"); err != nil {
			t.Fatal(err)
		}
		nextEvent(t, events)
		const pushers, refsEach = 6, 4
		work := t.TempDir()
		want := map[string]bool{}
		var wg sync.WaitGroup
		errs := make(chan error, pushers)
		for i := 0; i < pushers; i++ {
			w := filepath.Join(work, fmt.Sprint(i))
			g.Run(work, "init", "-q", w)
			id := g.CommitFile(w, "f", fmt.Sprint(i), fmt.Sprint("commit ", i))
			var specs, lines []string
			for j := 0; j < refsEach; j++ {
				ref := fmt.Sprintf("refs/heads/p%d-%d", i, j)
				specs = append(specs, id+":"+ref)
				lines = append(lines, fmt.Sprintf("%s %s..%s", ref, mesh.ZeroID[:7], id[:7]))
			}
			sort.Strings(lines)
			want[strings.Join(lines, ", ")] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := g.TryRun(w, append([]string{"push", "-q", "--atomic", repoURL("PROJ", "conc")}, specs...)...); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i := 0; i < pushers; i++ {
			ev := nextEvent(t, events)
			got := updatesString(ev.Updates)
			if ev.Type != mesh.EventRefsChanged || !want[got] {
				t.Fatalf("event %d = %s %s: not exactly one push's refs", i, ev.Type, got)
			}
			delete(want, got)
		}
		g.Fsck(filepath.Join(root, "PROJ", "conc.git"))
	})
}
