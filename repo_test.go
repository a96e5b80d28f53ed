package gitfleet_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet"
)

func TestParseRepoPath(t *testing.T) {
	long := strings.Repeat("a", gitfleet.MaxNameLen)
	tests := []struct {
		in   string
		want gitfleet.RepoName
		ok   bool
	}{
		{"PROJ/repo", gitfleet.RepoName{Project: "PROJ", Slug: "repo"}, true},
		{"/PROJ/repo.git", gitfleet.RepoName{Project: "PROJ", Slug: "repo"}, true},
		{"proj/Repo.git", gitfleet.RepoName{Project: "PROJ", Slug: "repo"}, true},
		{"P_1/a.b-c_d", gitfleet.RepoName{Project: "P_1", Slug: "a.b-c_d"}, true},
		{"P/" + long, gitfleet.RepoName{Project: "P", Slug: long}, true},
		{"P/" + long + "a", gitfleet.RepoName{}, false},
		{"PROJ/repo.git.git", gitfleet.RepoName{}, false},
		{"//PROJ/repo", gitfleet.RepoName{}, false},
		{"PROJ/../repo", gitfleet.RepoName{}, false},
		{"PROJ/sub/repo", gitfleet.RepoName{}, false},
		{"PROJ", gitfleet.RepoName{}, false},
		{"1PROJ/repo", gitfleet.RepoName{}, false},
		{"_P/repo", gitfleet.RepoName{}, false},
		{"PROJ/-repo", gitfleet.RepoName{}, false},
		{"PROJ/.repo", gitfleet.RepoName{}, false},
		{"PROJ/re po", gitfleet.RepoName{}, false},
		{"PRОJ/repo", gitfleet.RepoName{}, false}, // Cyrillic O
		{"PROJ/reṕo", gitfleet.RepoName{}, false},
		{"/abs/path/to/repo.git", gitfleet.RepoName{}, false},
		{"--upload-pack=x/repo", gitfleet.RepoName{}, false},
		{"", gitfleet.RepoName{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := gitfleet.ParseRepoPath(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Fatalf("ParseRepoPath(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, gitfleet.ErrInvalidName) {
				t.Fatalf("ParseRepoPath(%q) = %v, %v; want an ErrInvalidName", tt.in, got, err)
			}
			if !got.IsZero() {
				t.Fatalf("ParseRepoPath(%q) returned %v with its error", tt.in, got)
			}
		})
	}
}

func TestCheckProjectKey(t *testing.T) {
	for key, ok := range map[string]bool{"PROJ": true, "P_1": true, "proj": false, "Proj": false, "1P": false, "": false, strings.Repeat("P", 129): false} {
		if err := gitfleet.CheckProjectKey(key); (err == nil) != ok {
			t.Errorf("CheckProjectKey(%q) = %v, want ok=%v", key, err, ok)
		} else if err != nil && !errors.Is(err, gitfleet.ErrInvalidName) {
			t.Errorf("CheckProjectKey(%q) = %v, not an ErrInvalidName", key, err)
		}
	}
}

func TestSlugify(t *testing.T) {
	tests := []struct{ in, want string }{
		{"My Repo", "my-repo"},
		{"  spaces  ", "spaces"},
		{"a -b", "a--b"},
		{"Ünïcödé name", "n-c-d-name"},
		{"x!!!y", "x-y"},
		{"release_1.2", "release_1.2"},
		{"--x--", "x"},
		{"!!!", ""},
		{"repo.git", ""},
		{strings.Repeat("a", 129), ""},
	}
	for _, tt := range tests {
		got, err := gitfleet.Slugify(tt.in)
		if tt.want == "" {
			if !errors.Is(err, gitfleet.ErrInvalidName) {
				t.Errorf("Slugify(%q) = %q, %v; want an ErrInvalidName", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Slugify(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNotFoundMatchesFS(t *testing.T) {
	err := errors.Join(errors.New("context"), gitfleet.ErrNotFound)
	wrapped := errors.New("x")
	if !errors.Is(err, gitfleet.ErrNotFound) {
		t.Fatal("a joined ErrNotFound is not an ErrNotFound")
	}
	if !errors.Is(gitfleet.ErrNotFound, errNotExist) {
		t.Fatal("ErrNotFound is not an fs.ErrNotExist")
	}
	if errors.Is(wrapped, gitfleet.ErrNotFound) {
		t.Fatal("an unrelated error is an ErrNotFound")
	}
}

// FuzzParseRepoPath checks that whatever ParseRepoPath accepts is normalised and
// parses again to itself, and that everything it refuses is an ErrInvalidName.
func FuzzParseRepoPath(f *testing.F) {
	for _, s := range []string{"PROJ/repo", "/p/r.git", "a/b/c", "../x", "P/r.git.git", "P/\x00", "P/" + strings.Repeat("z", 130)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := gitfleet.ParseRepoPath(in)
		if err != nil {
			if !errors.Is(err, gitfleet.ErrInvalidName) {
				t.Fatalf("error %v is not an ErrInvalidName", err)
			}
			return
		}
		if r.Project != strings.ToUpper(r.Project) || r.Slug != strings.ToLower(r.Slug) {
			t.Fatalf("%q gave an unnormalised %v", in, r)
		}
		again, err := gitfleet.ParseRepoPath(r.String())
		if err != nil || again != r {
			t.Fatalf("%q gave %v, which parses to %v, %v", in, r, again, err)
		}
		if strings.ContainsAny(r.String(), "\\ \x00") || strings.Contains(r.String(), "..") {
			t.Fatalf("%q gave a dangerous name %v", in, r)
		}
	})
}
