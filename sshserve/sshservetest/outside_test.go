package sshservetest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// outsideTest is the test of a module outside this repository that uses the
// fixture as a user would: it seeds a repository, clones and pushes with go-git
// and checks that a read-only user is refused. OUTSIDE_WANT_GOGIT says which
// backend it must get.
const outsideTest = `package outside_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

func commit(t *testing.T, repo *git.Repository, name string) string {
	t.Helper()
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wt.Filesystem.Root(), name), []byte(name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add(name); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Outside", Email: "outside@example.com", When: time.Now()}
	id, err := wt.Commit("add "+name, &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func TestCloneAndPush(t *testing.T) {
	srv := sshservetest.NewServer(t)
	if want := os.Getenv("OUTSIDE_WANT_GOGIT") == "1"; srv.GoGit != want {
		t.Fatalf("GoGit = %v, want %v", srv.GoGit, want)
	}
	head := srv.SeedRepo("PROJ", "repo")
	reader := srv.AddUser("reader", sshservetest.Read("PROJ/*"))
	url := srv.URL("PROJ", "repo")

	repo, err := git.PlainClone(t.TempDir(), false, &git.CloneOptions{URL: url, Auth: srv.Auth()})
	if err != nil {
		t.Fatal(err)
	}
	if ref, err := repo.Head(); err != nil || ref.Hash().String() != head {
		t.Fatalf("HEAD %v (%v), want %s", ref, err, head)
	}
	next := commit(t, repo, "pushed.txt")
	if err := repo.Push(&git.PushOptions{Auth: srv.Auth()}); err != nil {
		t.Fatal(err)
	}
	if got := srv.Refs("PROJ", "repo")["refs/heads/main"]; got != next {
		t.Fatalf("main = %s after push, want %s", got, next)
	}

	ro, err := git.PlainClone(t.TempDir(), false, &git.CloneOptions{URL: url, Auth: reader.Auth()})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, ro, "refused.txt")
	err = ro.Push(&git.PushOptions{Auth: reader.Auth(), RefSpecs: []config.RefSpec{"HEAD:refs/heads/main"}})
	if err == nil {
		t.Fatal("a read-only user pushed")
	}
	if got := srv.Refs("PROJ", "repo")["refs/heads/main"]; got != next {
		t.Fatalf("main = %s after a refused push, want %s", got, next)
	}
}
`

// TestOutsideModule builds a module outside this repository that depends on it
// through a replace directive, and runs its test twice: with git on PATH (the
// git backend) and with a PATH holding only the go command (the go-git
// backend).
func TestOutsideModule(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is not installed: %v", err)
	}
	if testing.Short() {
		t.Skip("builds and tests a module: skipped in -short mode")
	}
	gitPath, gitErr := exec.LookPath("git")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))

	mod := t.TempDir()
	run := func(t *testing.T, path string, extra []string, args ...string) {
		t.Helper()
		start := time.Now()
		cmd := exec.Command(goBin, args...)
		cmd.Dir = mod
		// CGO_ENABLED=0 in both runs: a PATH without a C compiler would turn cgo
		// off anyway, and one setting lets the second run reuse the first build.
		env := []string{"PATH=" + path, "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local", "CGO_ENABLED=0"}
		for _, kv := range os.Environ() {
			name, _, _ := strings.Cut(kv, "=")
			switch name {
			case "PATH", "GOFLAGS", "GOTOOLCHAIN", "CGO_ENABLED", "OUTSIDE_WANT_GOGIT", "GITFLEET_INTEROP":
			default:
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, extra...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
		t.Logf("go %s: %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	}
	path := os.Getenv("PATH")
	run(t, path, nil, "mod", "init", "example.com/outside")
	run(t, path, nil, "mod", "edit", "-require=github.com/gitfleet/gitfleet@v0.0.0", "-replace=github.com/gitfleet/gitfleet="+root)
	// The repository's checksums cover every module the outside one needs.
	sums, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.sum"), sums, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(mod, "outside_test.go"), []byte(outsideTest), 0o644))
	run(t, path, nil, "mod", "tidy")

	t.Run("with git", func(t *testing.T) {
		if gitErr != nil {
			t.Skipf("git is not installed: %v", gitErr)
		}
		require.NotEmpty(t, gitPath)
		run(t, path, nil, "test", "-count=1", "./...")
	})
	t.Run("without git", func(t *testing.T) {
		// A PATH holding only the go command.
		bin := t.TempDir()
		require.NoError(t, os.Symlink(goBin, filepath.Join(bin, "go")))
		run(t, bin, []string{"OUTSIDE_WANT_GOGIT=1"}, "test", "-count=1", "./...")
	})
}
