package mesh_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func openStore(t testing.TB) *mesh.Store {
	t.Helper()
	h := testutil.NewHome(t)
	s, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: h.Repos, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestReposCreateListDelete(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s mesh.Repos, root string) {
		ctx := ctxT(t)
		for _, r := range [][2]string{{"PROJ", "b"}, {"proj", "A-1"}, {"ANOTHER", "x.y"}, {"PROJ", "a"}} {
			if err := s.Create(ctx, r[0], r[1]); err != nil {
				t.Fatalf("Create %v: %v", r, err)
			}
		}
		if err := s.Create(ctx, "PROJ", "b"); !errors.Is(err, mesh.ErrExists) {
			t.Fatalf("second Create: %v, want ErrExists", err)
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []mesh.RepoInfo{{"ANOTHER", "x.y"}, {"PROJ", "a"}, {"PROJ", "a-1"}, {"PROJ", "b"}}
		if len(list) != len(want) {
			t.Fatalf("List = %v, want %v", list, want)
		}
		for i := range want {
			if list[i] != want[i] {
				t.Fatalf("List = %v, want %v", list, want)
			}
		}
		dir := filepath.Join(root, "PROJ", "b.git")
		g := testutil.NewGit(t)
		if head := strings.TrimSpace(g.Run(dir, "symbolic-ref", "HEAD")); head != "refs/heads/main" {
			t.Errorf("HEAD = %q", head)
		}
		for key, want := range map[string]string{"core.bare": "true", "receive.fsckObjects": "true", "uploadpack.allowFilter": "true", "uploadpack.allowAnySHA1InWant": "false"} {
			if got := strings.TrimSpace(g.Run(dir, "config", key)); got != want {
				t.Errorf("config %s = %q, want %q", key, got, want)
			}
		}
		if fi, err := os.Stat(filepath.Join(dir, "hooks", "reference-transaction")); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("event hook not installed: %v", err)
		}
		g.Fsck(dir)
		if ok, err := s.Exists(ctx, "proj", "B"); err != nil || !ok {
			t.Errorf("Exists(proj, B) = %v, %v", ok, err)
		}
		if err := s.Delete(ctx, "PROJ", "b"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Exists(ctx, "PROJ", "b"); err != nil || ok {
			t.Errorf("Exists after Delete = %v, %v", ok, err)
		}
		if err := s.Delete(ctx, "PROJ", "b"); !errors.Is(err, mesh.ErrNotFound) {
			t.Errorf("second Delete: %v, want ErrNotFound", err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("deleted repository still on disk: %v", err)
		}
		if err := s.Delete(ctx, "ANOTHER", "x.y"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "ANOTHER")); !os.IsNotExist(err) {
			t.Errorf("empty project directory left behind: %v", err)
		}
		for _, bad := range [][2]string{{"PROJ", "../x"}, {"", "r"}, {"PROJ", "r.git"}} {
			if err := s.Create(ctx, bad[0], bad[1]); !errors.Is(err, mesh.ErrInvalidName) {
				t.Errorf("Create(%q, %q): %v, want ErrInvalidName", bad[0], bad[1], err)
			}
		}
		if _, err := s.Refs(ctx, "PROJ", "missing"); !errors.Is(err, mesh.ErrNotFound) {
			t.Errorf("Refs of a missing repository: %v, want ErrNotFound", err)
		}
	})
}

func TestServeGitCloneAndPush(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := ctxT(t)
	if err := s.Create(ctx, "PROJ", "repo"); err != nil {
		t.Fatal(err)
	}
	g := newGit(t, startGitServer(t, s))
	work := t.TempDir()
	g.Run(work, "clone", "-q", repoURL("PROJ", "repo"), "w")
	wt := filepath.Join(work, "w")
	id := g.CommitFile(wt, "a.txt", "hello\n", "first")
	g.Run(wt, "push", "-q", "origin", "HEAD:refs/heads/main")
	refs, err := s.Refs(ctx, "PROJ", "repo")
	if err != nil {
		t.Fatal(err)
	}
	if refs["refs/heads/main"] != id || len(refs) != 1 {
		t.Fatalf("Refs = %v, want main=%s", refs, id)
	}
	g.Run(work, "clone", "-q", repoURL("PROJ", "repo"), "w2")
	if got := strings.TrimSpace(g.Run(filepath.Join(work, "w2"), "rev-parse", "HEAD")); got != id {
		t.Fatalf("cloned HEAD = %s, want %s", got, id)
	}
	g.Fsck(filepath.Join(s.Root(), "PROJ", "repo.git"))
}

// TestStaleLockFilesAreCleared plants the lock files a SIGKILLed git leaves behind:
// the store's first push to the repository clears them instead of failing forever.
func TestStaleLockFilesAreCleared(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := ctxT(t)
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	// A new Store on the same root, as after a crash and restart.
	s.Close()
	s2, err := mesh.OpenStore(ctx, mesh.StoreConfig{Root: s.Root(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	dir := filepath.Join(s.Root(), "PROJ", "r.git")
	for _, f := range []string{"refs/heads/main.lock", "packed-refs.lock"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g2 := newGit(t, startGitServer(t, s2))
	w := filepath.Join(t.TempDir(), "w")
	g2.Run("", "clone", "-q", repoURL("PROJ", "r"), w)
	id := g2.CommitFile(w, "x", "x", "x")
	g2.Run(w, "push", "-q", "origin", "HEAD:main")
	if refs, _ := s2.Refs(ctx, "PROJ", "r"); refs["refs/heads/main"] != id {
		t.Fatalf("main = %s, want %s", refs["refs/heads/main"], id)
	}
	g2.Fsck(dir)
}

// cutBackend serves through a Store until cut is closed, which cancels every
// running service as a client disconnect does in the SSH server. onInput runs once,
// when the client's first bytes after the advertisement arrive.
type cutBackend struct {
	s       *mesh.Store
	cut     chan struct{}
	onInput func()
}

// firstRead calls f before the first read returns data.
type firstRead struct {
	r    io.Reader
	once sync.Once
	f    func()
}

func (r *firstRead) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.once.Do(r.f)
	}
	return n, err
}

func (b cutBackend) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	stdin = &firstRead{r: stdin, f: b.onInput}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.cut:
			cancel()
		case <-ctx.Done():
		}
	}()
	return b.s.ServeGit(ctx, req, stdin, stdout, stderr)
}

// TestCutPushLeavesNoLock cuts a push (its context ends, as when the SSH client
// hangs up) while git holds the locks of the refs it updates and waits in its
// reference-transaction hook for the store's write lock, which the test holds: the
// next push of the same ref succeeds at once and leaves no lock file. (Git removes
// its locks on SIGTERM, except when the signal lands between its creating a lock
// and registering it; the store clears what a push killed by a signal leaves.)
func TestCutPushLeavesNoLock(t *testing.T) {
	t.Parallel()
	testCutPush(t, false)
}

// TestKilledPushLeavesNoLock is TestCutPushLeavesNoLock with receive-pack killed
// by SIGKILL instead (the kernel's OOM killer, an operator), which leaves its lock
// files behind for the store to clear.
func TestKilledPushLeavesNoLock(t *testing.T) {
	t.Parallel()
	testCutPush(t, true)
}

func testCutPush(t *testing.T, kill bool) {
	s := openStore(t)
	ctx := ctxT(t)
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	w := filepath.Join(t.TempDir(), "w")
	g.Run("", "clone", "-q", repoURL("PROJ", "r"), w)
	id := g.CommitFile(w, "x", "x", "x")

	held := make(chan func(), 1)
	b := cutBackend{s, make(chan struct{}), func() {
		release, err := mesh.HoldWriteLock(ctx, s, "PROJ", "r")
		if err != nil {
			panic(err)
		}
		held <- release
	}}
	gc := newGit(t, startGitServer(t, b))
	errc := make(chan error, 1)
	go func() {
		_, err := gc.TryRun(w, "push", "-q", "origin", "HEAD:main")
		errc <- err
	}()
	release := <-held
	// The hook asks for the write lock once git has locked every ref it updates.
	for deadline := time.Now().Add(time.Minute); mesh.WriteWaiters(s, "PROJ", "r") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			release()
			t.Fatal("the push never asked for the write lock")
		}
	}
	dir := filepath.Join(s.Root(), "PROJ", "r.git")
	if locks := lockFiles(t, dir); len(locks) == 0 {
		release()
		t.Fatal("no lock files while the push waits in its hook: the test cuts at the wrong moment")
	}
	if kill {
		pid := receivePackIn(t, dir)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if locks := lockFiles(t, dir); len(locks) == 0 {
			t.Fatal("SIGKILL left no lock files: the test does not show the store's clean-up")
		}
		release() // the push ends only once its gate has had the lock
		if err := <-errc; err == nil {
			t.Fatal("the killed push succeeded")
		}
	} else {
		close(b.cut)
		if err := <-errc; err == nil {
			t.Fatal("the cut push succeeded")
		}
		release()
	}
	if out, err := g.TryRun(w, "push", "-q", "origin", "HEAD:main"); err != nil {
		t.Fatalf("push after a cut push: %v\n%s", err, out)
	}
	if locks := lockFiles(t, dir); len(locks) != 0 {
		t.Fatalf("lock files after the next push: %v", locks)
	}
	if refs, _ := s.Refs(ctx, "PROJ", "r"); refs["refs/heads/main"] != id {
		t.Fatalf("main = %s, want %s", refs["refs/heads/main"], id)
	}
	g.Fsck(dir)
}

// lockFiles lists the git lock files in a repository.
func lockFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".lock") {
			out = append(out, strings.TrimPrefix(p, dir+"/"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// receivePackIn returns the process id of the git receive-pack running in dir.
func receivePackIn(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if string(cmdline) == "git\x00receive-pack\x00.\x00" && cwd == dir {
			return pid
		}
	}
	t.Fatalf("no git receive-pack runs in %s", dir)
	return 0
}
