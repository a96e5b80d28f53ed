package mesh_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// objectCounts counts the loose objects and packs of a repository directory.
func objectCounts(t testing.TB, dir string) (loose, packs int) {
	t.Helper()
	l, _ := filepath.Glob(filepath.Join(dir, "objects", "[0-9a-f][0-9a-f]", "*"))
	p, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "pack-*.idx"))
	return len(l), len(p)
}

// TestMaintain repacks a repository that pushes left with loose objects into one
// pack with a bitmap, keeps every ref and every object (an unreachable one
// included, which becomes loose rather than lost), and leaves a repository under
// the limits alone.
func TestMaintain(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := ctxT(t)
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	dir := filepath.Join(s.Root(), "PROJ", "r.git")
	w := filepath.Join(t.TempDir(), "w")
	g.Run("", "clone", "-q", repoURL("PROJ", "r"), w)
	for i := range 3 {
		g.CommitFile(w, "f.txt", string(rune('a'+i))+"\n", "more")
		g.Run(w, "push", "-q", "origin", "HEAD:main")
	}
	doomed := g.CommitFile(w, "doomed.txt", "doomed\n", "doomed")
	g.Run(w, "push", "-q", "origin", "HEAD:refs/heads/doomed")
	if loose, _ := objectCounts(t, dir); loose == 0 {
		t.Fatal("the pushes left no loose objects: nothing to test")
	}
	refs, err := s.Refs(ctx, "PROJ", "r")
	if err != nil {
		t.Fatal(err)
	}

	// Under the limits: nothing happens.
	res, err := s.Maintain(ctx, "PROJ", "r", false)
	if err != nil || res.Repacked {
		t.Fatalf("Maintain below the limits: %+v, %v; want nothing done", res, err)
	}
	res, err = s.Maintain(ctx, "PROJ", "r", true)
	if err != nil {
		t.Fatal(err)
	}
	loose, packs := objectCounts(t, dir)
	if !res.Repacked || res.LooseBefore == 0 || res.LooseAfter != 0 || res.PacksAfter != 1 || loose != 0 || packs != 1 {
		t.Fatalf("forced Maintain: %+v; on disk %d loose, %d packs; want one pack and nothing loose", res, loose, packs)
	}
	if bitmaps, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.bitmap")); len(bitmaps) != 1 {
		t.Fatalf("bitmaps after Maintain: %v, want one", bitmaps)
	}
	after, err := s.Refs(ctx, "PROJ", "r")
	if err != nil {
		t.Fatal(err)
	}
	sameRefs(t, after, refs)
	g.Fsck(dir)

	// The branch goes; its commit, now unreachable inside the pack, survives the
	// next repack as a loose object.
	g.Run(w, "push", "-q", "origin", ":refs/heads/doomed")
	if _, err := s.Maintain(ctx, "PROJ", "r", true); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("git", "-C", dir, "cat-file", "-e", doomed).Run(); err != nil {
		t.Fatalf("unreachable commit %s lost by maintenance: %v", doomed, err)
	}
	g.Run("", "clone", "-q", "--bare", repoURL("PROJ", "r"), filepath.Join(t.TempDir(), "c.git"))

	if _, err := s.Maintain(ctx, "PROJ", "nope", true); !errors.Is(err, mesh.ErrNotFound) {
		t.Fatalf("Maintain of a missing repository: %v, want ErrNotFound", err)
	}
}

// TestMaintenanceRunsByItself: with a short interval and low limits, the store's
// own background check repacks a repository that pushes pushed over the limit.
func TestMaintenanceRunsByItself(t *testing.T) {
	t.Parallel()
	h := testutil.NewHome(t)
	s, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: h.Repos, Logger: testLogger(t),
		MaintenanceInterval: 20 * time.Millisecond, MaintainLoose: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	w := filepath.Join(t.TempDir(), "w")
	g.Run("", "clone", "-q", repoURL("PROJ", "r"), w)
	id := g.CommitFile(w, "f.txt", "new\n", "more")
	g.Run(w, "push", "-q", "origin", "HEAD:main")
	dir := filepath.Join(s.Root(), "PROJ", "r.git")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		loose, packs := objectCounts(t, dir)
		if loose == 0 && packs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d loose objects and %d packs a minute later", loose, packs)
		}
	}
	if refs, _ := s.Refs(context.Background(), "PROJ", "r"); refs["refs/heads/main"] != id {
		t.Fatalf("main = %s after maintenance, want %s", refs["refs/heads/main"], id)
	}
	g.Fsck(dir)
}
