package gitfleet_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet"
)

// The name rules as mesh tested them when it kept its own copy: Unicode
// look-alikes, hidden and option-like slugs, and the length limits.

func TestNewRepoNameRules(t *testing.T) {
	long := strings.Repeat("a", gitfleet.MaxNameLen)
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
			r, err := gitfleet.NewRepoName(c.project, c.slug)
			p, s := r.Project, r.Slug
			if c.wantP == "" {
				if !errors.Is(err, gitfleet.ErrInvalidName) {
					t.Fatalf("NewRepoName(%q, %q) = %q, %q, %v; want ErrInvalidName", c.project, c.slug, p, s, err)
				}
				return
			}
			if err != nil || p != c.wantP || s != c.wantS {
				t.Fatalf("NewRepoName(%q, %q) = %q, %q, %v; want %q, %q", c.project, c.slug, p, s, err, c.wantP, c.wantS)
			}
		})
	}
}

func TestParseRepoPathRules(t *testing.T) {
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
		r, err := gitfleet.ParseRepoPath(c.in)
		p, s := r.Project, r.Slug
		if c.p == "" {
			if !errors.Is(err, gitfleet.ErrInvalidName) {
				t.Errorf("ParseRepoPath(%q) = %q, %q, %v; want ErrInvalidName", c.in, p, s, err)
			}
			continue
		}
		if err != nil || p != c.p || s != c.s {
			t.Errorf("ParseRepoPath(%q) = %q, %q, %v; want %q, %q", c.in, p, s, err, c.p, c.s)
		}
	}
}
