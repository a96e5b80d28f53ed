package mesh_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"

	"github.com/gitfleet/gitfleet"
)

// TestSymlinksInRoot plants symbolic links inside the store root, pointing at a real
// repository outside it, and checks that the store never follows them.
func TestSymlinksInRoot(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := ctxT(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim.git")
	testutil.GenerateRepo(t, victim, testutil.SmallRepo)
	before := testutil.NewGit(t).Refs(victim)
	if err := os.Symlink(outside, filepath.Join(s.Root(), "EVIL")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(s.Root(), "PROJ"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(s.Root(), "PROJ", "link.git")); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]string{{"EVIL", "victim"}, {"PROJ", "link"}} {
		if ok, err := s.Exists(ctx, r[0], r[1]); ok || err != nil {
			t.Errorf("Exists(%v) = %v, %v", r, ok, err)
		}
		if _, err := s.Refs(ctx, r[0], r[1]); !errors.Is(err, mesh.ErrNotFound) {
			t.Errorf("Refs(%v): %v, want ErrNotFound", r, err)
		}
		err := s.ServeGit(ctx, request(gitfleet.ReceivePack, r[0]+"/"+r[1], nil), strings.NewReader("0000"), new(strings.Builder), new(strings.Builder))
		if !errors.Is(err, mesh.ErrNotFound) {
			t.Errorf("ServeGit(%v): %v, want ErrNotFound", r, err)
		}
		if err := s.Delete(ctx, r[0], r[1]); !errors.Is(err, mesh.ErrNotFound) {
			t.Errorf("Delete(%v): %v, want ErrNotFound", r, err)
		}
	}
	if err := s.Create(ctx, "EVIL", "new"); err == nil {
		t.Error("Create under a symlinked project succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "new.git")); !os.IsNotExist(err) {
		t.Errorf("Create wrote outside the root: %v", err)
	}
	if err := s.Create(ctx, "PROJ", "link"); err == nil {
		t.Error("Create over a symlinked repository succeeded")
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want nothing", list, err)
	}
	after := testutil.NewGit(t).Refs(victim)
	if len(after) != len(before) {
		t.Errorf("the repository outside the root changed")
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("victim: %v", err)
	}
}
