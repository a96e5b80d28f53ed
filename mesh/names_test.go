package mesh_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

func TestNormalize(t *testing.T) {
	long := strings.Repeat("a", mesh.MaxNameLen)
	cases := []struct {
		project, slug string
		wantP, wantS  string // empty: ErrInvalidName
	}{
		{"PROJ", "repo", "PROJ", "repo"},
		{"proj", "Repo", "PROJ", "repo"},
		{"P_1", "a.b_c-d", "P_1", "a.b_c-d"},
		{"P", "0x", "P", "0x"},
		{"P", long, "P", long},
		{strings.ToUpper(long), "r", strings.ToUpper(long), "r"},
		{"P", long + "a", "", ""},
		{"P" + long, "r", "", ""},
		{"", "r", "", ""},
		{"P", "", "", ""},
		{"1P", "r", "", ""},
		{"_P", "r", "", ""},
		{"P-Q", "r", "", ""},
		{"P", "..", "", ""},
		{"P", "../x", "", ""},
		{"..", "r", "", ""},
		{"P", "a/b", "", ""},
		{"P", "/etc", "", ""},
		{"/P", "r", "", ""},
		{"P", ".hidden", "", ""},
		{"P", "-opt", "", ""},
		{"P", "r.git", "", ""},
		{"P", "R.GIT", "", ""},
		{"P", "a\x00b", "", ""},
		{"P\x00", "r", "", ""},
		{"P", "a b", "", ""},
		{"P", "a\\b", "", ""},
		{"PRОJ", "r", "", ""},   // Cyrillic О
		{"P", "rеpo", "", ""},   // Cyrillic е
		{"proȷ", "r", "", ""},   // dotless j
		{"ıp", "r", "", ""},     // dotless ı upper-cases to I in Unicode
		{"P", "ﬁle", "", ""},    // ligature
		{"P", "ｒｅｐｏ", "", ""},   // full-width
		{"K", "\u212a", "", ""}, // Kelvin sign lower-cases to k in Unicode
	}
	for _, c := range cases {
		t.Run(c.project+"/"+c.slug, func(t *testing.T) {
			p, s, err := mesh.Normalize(c.project, c.slug)
			if c.wantP == "" {
				if !errors.Is(err, mesh.ErrInvalidName) {
					t.Fatalf("Normalize(%q, %q) = %q, %q, %v; want ErrInvalidName", c.project, c.slug, p, s, err)
				}
				return
			}
			if err != nil || p != c.wantP || s != c.wantS {
				t.Fatalf("Normalize(%q, %q) = %q, %q, %v; want %q, %q", c.project, c.slug, p, s, err, c.wantP, c.wantS)
			}
		})
	}
}

func TestParseRepoPath(t *testing.T) {
	cases := []struct{ in, p, s string }{
		{"PROJ/repo", "PROJ", "repo"},
		{"/PROJ/repo.git", "PROJ", "repo"},
		{"proj/Repo.git", "PROJ", "repo"},
		{"PROJ/repo/", "", ""},
		{"PROJ/../repo", "", ""},
		{"../PROJ/repo", "", ""},
		{"//PROJ/repo", "", ""},
		{"PROJ", "", ""},
		{"PROJ/a/b", "", ""},
		{"PROJ/repo.git.git", "", ""},
		{"~/PROJ/repo", "", ""},
		{"PROJ/repo\x00", "", ""},
	}
	for _, c := range cases {
		p, s, err := mesh.ParseRepoPath(c.in)
		if c.p == "" {
			if !errors.Is(err, mesh.ErrInvalidName) {
				t.Errorf("ParseRepoPath(%q) = %q, %q, %v; want ErrInvalidName", c.in, p, s, err)
			}
			continue
		}
		if err != nil || p != c.p || s != c.s {
			t.Errorf("ParseRepoPath(%q) = %q, %q, %v; want %q, %q", c.in, p, s, err, c.p, c.s)
		}
	}
}

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
		err := s.ServeGit(ctx, mesh.ServiceReceivePack, r[0]+"/"+r[1], nil, strings.NewReader("0000"), new(strings.Builder), new(strings.Builder))
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
