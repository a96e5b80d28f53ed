package sshserve

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	long := strings.Repeat("a", 10000)
	cases := []struct {
		line    string
		want    Command
		wantErr error
	}{
		{"git-upload-pack 'PROJ/repo.git'", Command{ServiceUploadPack, "PROJ", "repo"}, nil},
		{"git-upload-pack '/PROJ/repo.git'", Command{ServiceUploadPack, "PROJ", "repo"}, nil},
		{"git-upload-pack '/proj/Repo'", Command{ServiceUploadPack, "PROJ", "repo"}, nil},
		{"git upload-pack '/PROJ/repo.git'", Command{ServiceUploadPack, "PROJ", "repo"}, nil},
		{"git-receive-pack '/PROJ/my-repo.x_y'", Command{ServiceReceivePack, "PROJ", "my-repo.x_y"}, nil},
		{"git receive-pack 'PROJ/repo'", Command{ServiceReceivePack, "PROJ", "repo"}, nil},
		{"git-upload-archive '/PROJ/repo.git'", Command{ServiceUploadArchive, "PROJ", "repo"}, nil},
		{"git upload-archive 'PROJ/repo.git'", Command{ServiceUploadArchive, "PROJ", "repo"}, nil},
		{"git-upload-pack PROJ/repo.git", Command{ServiceUploadPack, "PROJ", "repo"}, nil},
		{"whoami", Command{Service: CommandWhoami}, nil},

		// Hostile input.
		{"git-upload-pack '../../etc/passwd'", Command{}, ErrBadRepoPath},
		{"git-upload-pack '/PROJ/../x'", Command{}, ErrBadRepoPath},
		{"git-upload-pack '/PROJ/..'", Command{}, ErrBadRepoPath},
		// An absolute path of two components names a repository like any other
		// (here ETC/passwd in the store), never a file.
		{"git-upload-pack '/etc/passwd'", Command{ServiceUploadPack, "ETC", "passwd"}, nil},
		{"git-upload-pack '/var/lib/repos/PROJ/repo.git'", Command{}, ErrBadRepoPath},
		{"git-upload-pack '/PROJ/re\x00po'", Command{}, ErrBadQuoting},
		{"git-upload-pack '" + long + "'", Command{}, ErrUnknownCommand},
		{"git-upload-pack '/PROJ/" + strings.Repeat("r", 200) + "'", Command{}, ErrBadRepoPath},
		{`git-upload-pack 'PROJ/a'\''b'`, Command{}, ErrBadRepoPath},
		{`git-upload-pack 'PROJ/a'\!'b'`, Command{}, ErrBadRepoPath},
		{"git-upload-pack 'PROJ/repo'; rm -rf /", Command{}, ErrBadQuoting},
		{"git-upload-pack 'PROJ/repo' 'x'", Command{}, ErrBadQuoting},
		{"git-upload-pack '$(reboot)/repo'", Command{}, ErrBadRepoPath},
		{"git-upload-pack `reboot`", Command{}, ErrBadRepoPath},
		{"git-upload-pack PROJ/$(id)", Command{}, ErrBadRepoPath},
		{"git-upload-pack 'PROJ/repo\n'", Command{}, ErrBadQuoting},
		{"git-upload-pack 'PROJ/repo'\nwhoami", Command{}, ErrBadQuoting},
		{"git-upload-pack '--upload-pack=touch /tmp/x'", Command{}, ErrBadRepoPath},
		{"git-upload-pack --upload-pack=x", Command{}, ErrBadRepoPath},
		{"git-upload-pack '-PROJ/repo'", Command{}, ErrBadRepoPath},
		{"git-upload-pack 'PROJ/-repo'", Command{}, ErrBadRepoPath},
		{"git-upload-pack 'PROJ/repo", Command{}, ErrBadQuoting},
		{"git-upload-pack \"PROJ/repo\"", Command{}, ErrBadQuoting},
		{"git-upload-pack", Command{}, ErrBadRepoPath},
		{"git-upload-pack ''", Command{}, ErrBadRepoPath},
		{"git-upload-pack  'PROJ/repo'", Command{}, ErrBadQuoting},
		{"git-upload-pack 'PROJ/repo.git.git'", Command{}, ErrBadRepoPath},
		{"git-upload-pack 'PROJ//repo'", Command{}, ErrBadRepoPath},
		{"git-upload-pack 'PROJ/sub/repo'", Command{}, ErrBadRepoPath},
		{"git-upload-pack '1PROJ/repo'", Command{}, ErrBadRepoPath},
		{"git-upload-pack 'PRÖJ/repo'", Command{}, ErrBadRepoPath},
		{"git-upload-pack 'PROJ/.repo'", Command{}, ErrBadRepoPath},
		{"git-upload-pack '~user/repo'", Command{}, ErrBadRepoPath},
		{"git upload-pack", Command{}, ErrBadRepoPath},
		{"git", Command{}, ErrUnknownCommand},
		{"git-shell -c 'git-upload-pack PROJ/repo'", Command{}, ErrUnknownCommand},
		{"git config --list", Command{}, ErrUnknownCommand},
		{"git-daemon 'PROJ/repo'", Command{}, ErrUnknownCommand},
		{"sh", Command{}, ErrUnknownCommand},
		{"bash -c id", Command{}, ErrUnknownCommand},
		{"whoami --help", Command{}, ErrUnknownCommand},
		{"WHOAMI", Command{}, ErrUnknownCommand},
		{"", Command{}, ErrUnknownCommand},
		{" git-upload-pack 'PROJ/repo'", Command{}, ErrUnknownCommand},
	}
	for _, tc := range cases {
		name := tc.line
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			got, err := ParseCommand(tc.line)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseCommand(%q) = %+v, %v; want error %v", tc.line, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseCommand(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
			}
		})
	}
}

func TestCommandAccess(t *testing.T) {
	for svc, want := range map[string]Access{ServiceUploadPack: AccessRead, ServiceUploadArchive: AccessRead, ServiceReceivePack: AccessWrite} {
		if got := (Command{Service: svc}).Access(); got != want {
			t.Errorf("%s needs %v, want %v", svc, got, want)
		}
	}
}

func TestUnquote(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"'a'", "a", true},
		{`'a'\''b'`, "a'b", true},
		{`'a'\!'b'`, "a!b", true},
		{"''", "", true},
		{"abc", "abc", true},
		{"'a", "", false},
		{"'a'b", "", false},
		{`'a'\'`, "", false},
		{"'a' 'b'", "", false},
		{"a b", "", false},
		{`a\b`, "", false},
	}
	for _, tc := range cases {
		got, err := unquote(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("unquote(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzParseCommand checks that whatever parses names a known service and a
// repository that round-trips through ParseRepoPath, with nothing a shell or git
// would read specially.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"git-upload-pack 'PROJ/repo.git'", "git upload-pack '/p/r'", "whoami",
		`git-receive-pack 'P/a'\''b'`, "git-upload-archive P/r", "git-upload-pack '--x'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseCommand(line)
		if err != nil {
			return
		}
		switch c.Service {
		case CommandWhoami:
			if c.Project != "" || c.Slug != "" {
				t.Fatalf("whoami with a repository: %+v", c)
			}
			return
		case ServiceUploadPack, ServiceReceivePack, ServiceUploadArchive:
		default:
			t.Fatalf("unknown service %q from %q", c.Service, line)
		}
		p, s, err := ParseRepoPath(c.Repo())
		if err != nil || p != c.Project || s != c.Slug {
			t.Fatalf("%q: repo %q does not round-trip: %q %q %v", line, c.Repo(), p, s, err)
		}
		if strings.ContainsAny(c.Repo(), "'\"\\$`;|&<> \t\n\x00") || path.Clean(c.Repo()) != c.Repo() || strings.HasPrefix(c.Slug, "-") {
			t.Fatalf("%q: unsafe repository %q accepted", line, c.Repo())
		}
	})
}

// FuzzParseRepoPath checks that accepted paths are canonical: upper-case project,
// lower-case slug, and idempotent.
func FuzzParseRepoPath(f *testing.F) {
	for _, s := range []string{"PROJ/repo", "/proj/repo.git", "../x", "P/r.git.git", "P//r", "P/r/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		p, s, err := ParseRepoPath(path)
		if err != nil {
			return
		}
		if p != strings.ToUpper(p) || s != strings.ToLower(s) || !validProject(p) || !validSlug(s) {
			t.Fatalf("%q: non-canonical %q %q", path, p, s)
		}
		p2, s2, err := ParseRepoPath("/" + p + "/" + s + ".git")
		if err != nil || p2 != p || s2 != s {
			t.Fatalf("%q: not idempotent: %q %q %v", path, p2, s2, err)
		}
	})
}
