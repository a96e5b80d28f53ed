package mesh_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	// The quarantine directory a receive-pack killed mid-pack leaves behind.
	debris := filepath.Join(dir, "objects", "tmp_objdir-incoming-Ab12Cd", "pack")
	if err := os.MkdirAll(debris, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(debris, "tmp_pack_x"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	g2 := newGit(t, startGitServer(t, s2))
	w := filepath.Join(t.TempDir(), "w")
	g2.Run("", "clone", "-q", repoURL("PROJ", "r"), w)
	id := g2.CommitFile(w, "x", "x", "x")
	g2.Run(w, "push", "-q", "origin", "HEAD:main")
	if refs, _ := s2.Refs(ctx, "PROJ", "r"); refs["refs/heads/main"] != id {
		t.Fatalf("main = %s, want %s", refs["refs/heads/main"], id)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "objects", "tmp_objdir-incoming-*")); len(left) != 0 {
		t.Fatalf("quarantine debris left: %v", left)
	}
	g2.Fsck(dir)
}
