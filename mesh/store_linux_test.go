//go:build linux

package mesh_test

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
)

// The tests of a cut or killed push catch git in its pre-receive hook through the
// gate's pipes and find receive-pack in /proc: they run on Linux.

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
// hangs up) while git holds the received objects in its quarantine directory and
// waits in its pre-receive hook for the store's write lock, which the test holds:
// the next push of the same ref succeeds at once and leaves no lock file and no
// quarantine directory. (Git removes both on SIGTERM, except when the signal lands
// between its creating one and registering it for removal; the store clears what
// a push killed by a signal leaves.)
func TestCutPushLeavesNoLock(t *testing.T) {
	t.Parallel()
	testCutPush(t, false)
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
	// The hook asks for the write lock once the pack has arrived and been checked.
	for deadline := time.Now().Add(time.Minute); mesh.WriteWaiters(s, "PROJ", "r") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			release()
			t.Fatal("the push never asked for the write lock")
		}
	}
	dir := filepath.Join(s.Root(), "PROJ", "r.git")
	if left := debris(t, dir); len(left) == 0 {
		release()
		t.Fatal("no quarantine directory while the push waits in its hook: the test cuts at the wrong moment")
	}
	if kill {
		pid := receivePackIn(t, dir)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if left := debris(t, dir); len(left) == 0 {
			t.Fatal("SIGKILL left no quarantine directory: the test does not show the store's clean-up")
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
	if left := debris(t, dir); len(left) != 0 {
		t.Fatalf("debris after the next push: %v", left)
	}
	if refs, _ := s.Refs(ctx, "PROJ", "r"); refs["refs/heads/main"] != id {
		t.Fatalf("main = %s, want %s", refs["refs/heads/main"], id)
	}
	g.Fsck(dir)
}

// debris lists the git lock files and receive-pack quarantine directories in a
// repository.
func debris(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".lock") {
			out = append(out, strings.TrimPrefix(p, dir+"/"))
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), "tmp_objdir-incoming-") {
			out = append(out, strings.TrimPrefix(p, dir+"/"))
			return fs.SkipDir
		}
		return nil
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

// TestKilledPushLeavesNoLock is TestCutPushLeavesNoLock with receive-pack killed
// by SIGKILL instead (the kernel's OOM killer, an operator), which leaves its lock
// files behind for the store to clear.
func TestKilledPushLeavesNoLock(t *testing.T) {
	t.Parallel()
	testCutPush(t, true)
}
