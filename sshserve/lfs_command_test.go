package sshserve

import (
	"errors"
	"testing"

	"github.com/gitfleet/gitfleet"
)

// TestParseLFSCommand: git-lfs-transfer and git-lfs-authenticate as git-lfs sends
// them (the path bare, then the operation), and what is refused.
func TestParseLFSCommand(t *testing.T) {
	lfs := func(s gitfleet.Service, op string) Command {
		return Command{Service: s, Repo: gitfleet.RepoName{Project: "PROJ", Slug: "repo"}, LFSOperation: op}
	}
	cases := []struct {
		line    string
		want    Command
		access  Access
		wantErr error
	}{
		{"git-lfs-transfer /PROJ/repo.git upload", lfs(gitfleet.LFSTransfer, gitfleet.LFSUpload), AccessWrite, nil},
		{"git-lfs-transfer /PROJ/repo.git download", lfs(gitfleet.LFSTransfer, gitfleet.LFSDownload), AccessRead, nil},
		{"git-lfs-transfer 'PROJ/repo.git' download", lfs(gitfleet.LFSTransfer, gitfleet.LFSDownload), AccessRead, nil},
		{"git-lfs-authenticate /PROJ/repo.git upload", lfs(CommandLFSAuthenticate, gitfleet.LFSUpload), AccessWrite, nil},
		{"git-lfs-authenticate /PROJ/repo.git download", lfs(CommandLFSAuthenticate, gitfleet.LFSDownload), AccessRead, nil},
		{"git-lfs-transfer /PROJ/repo.git", Command{}, 0, ErrBadRepoPath},
		{"git-lfs-transfer /PROJ/repo.git delete", Command{}, 0, ErrUnknownCommand},
		{"git-lfs-transfer upload", Command{}, 0, ErrBadRepoPath},
		{"git-lfs-transfer /PROJ/../x upload", Command{}, 0, ErrBadRepoPath},
		{"git-lfs-transfer /PROJ/repo.git; id upload", Command{}, 0, ErrBadQuoting},
		{"git-lfs-transfer 'PROJ/repo.git'x upload", Command{}, 0, ErrBadQuoting},
	}
	for _, c := range cases {
		got, err := ParseCommand(c.line)
		if c.wantErr != nil {
			if !errors.Is(err, c.wantErr) {
				t.Errorf("ParseCommand(%q) error = %v, want %v", c.line, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v", c.line, got, err, c.want)
			continue
		}
		if a := got.Access(); a != c.access {
			t.Errorf("ParseCommand(%q).Access() = %v, want %v", c.line, a, c.access)
		}
	}
}
