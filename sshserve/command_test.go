package sshserve

import (
	"errors"
	"path"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet"
)

// cmd is the Command for service on PROJECT/slug.
func cmd(service gitfleet.Service, project, slug string) Command {
	return Command{Service: service, Repo: gitfleet.RepoName{Project: project, Slug: slug}}
}

func TestParseCommand(t *testing.T) {
	long := strings.Repeat("a", 10000)
	cases := []struct {
		line    string
		want    Command
		wantErr error
	}{
		{"git-upload-pack 'PROJ/repo.git'", cmd(gitfleet.UploadPack, "PROJ", "repo"), nil},
		{"git-upload-pack '/PROJ/repo.git'", cmd(gitfleet.UploadPack, "PROJ", "repo"), nil},
		{"git-upload-pack '/proj/Repo'", cmd(gitfleet.UploadPack, "PROJ", "repo"), nil},
		{"git upload-pack '/PROJ/repo.git'", cmd(gitfleet.UploadPack, "PROJ", "repo"), nil},
		{"git-receive-pack '/PROJ/my-repo.x_y'", cmd(gitfleet.ReceivePack, "PROJ", "my-repo.x_y"), nil},
		{"git receive-pack 'PROJ/repo'", cmd(gitfleet.ReceivePack, "PROJ", "repo"), nil},
		{"git-upload-archive '/PROJ/repo.git'", cmd(gitfleet.UploadArchive, "PROJ", "repo"), nil},
		{"git upload-archive 'PROJ/repo.git'", cmd(gitfleet.UploadArchive, "PROJ", "repo"), nil},
		{"git-upload-pack PROJ/repo.git", cmd(gitfleet.UploadPack, "PROJ", "repo"), nil},
		{"whoami", Command{Service: CommandWhoami}, nil},

		// Hostile input.
		{"git-upload-pack '../../etc/passwd'", Command{}, ErrBadRepoPath},
		{"git-upload-pack '/PROJ/../x'", Command{}, ErrBadRepoPath},
		{"git-upload-pack '/PROJ/..'", Command{}, ErrBadRepoPath},
		// An absolute path of two components names a repository like any other
		// (here ETC/passwd in the store), never a file.
		{"git-upload-pack '/etc/passwd'", cmd(gitfleet.UploadPack, "ETC", "passwd"), nil},
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
	for svc, want := range map[gitfleet.Service]Access{gitfleet.UploadPack: AccessRead, gitfleet.UploadArchive: AccessRead, gitfleet.ReceivePack: AccessWrite} {
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
// repository that round-trips through gitfleet.ParseRepoPath, with nothing a shell or git
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
			if !c.Repo.IsZero() {
				t.Fatalf("whoami with a repository: %+v", c)
			}
			return
		case gitfleet.UploadPack, gitfleet.ReceivePack, gitfleet.UploadArchive:
		default:
			t.Fatalf("unknown service %q from %q", c.Service, line)
		}
		r, err := gitfleet.ParseRepoPath(c.Repo.String())
		if err != nil || r != c.Repo {
			t.Fatalf("%q: repo %q does not round-trip: %v %v", line, c.Repo, r, err)
		}
		if name := c.Repo.String(); strings.ContainsAny(name, "'\"\\$`;|&<> \t\n\x00") || path.Clean(name) != name || strings.HasPrefix(c.Repo.Slug, "-") {
			t.Fatalf("%q: unsafe repository %q accepted", line, name)
		}
	})
}
