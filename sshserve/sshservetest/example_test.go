package sshservetest_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// exampleT stands in for the *testing.T a real test would pass.
type exampleT struct {
	dirs     []string
	cleanups []func()
}

func (t *exampleT) Helper()                      {}
func (t *exampleT) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (t *exampleT) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (t *exampleT) Skipf(f string, args ...any)  { panic(fmt.Sprintf(f, args...)) }
func (t *exampleT) Cleanup(f func())             { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) TempDir() string {
	d, err := os.MkdirTemp("", "example-")
	if err != nil {
		panic(err)
	}
	t.dirs = append(t.dirs, d)
	return d
}
func (t *exampleT) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	for _, d := range t.dirs {
		os.RemoveAll(d)
	}
}

// A client library's test starts a server, seeds a repository and runs the real
// git against it with the fixture's environment. (This example needs the git and
// ssh programs, so go test compiles it without running it; TestCloneWithFixture
// runs the same steps.)
func ExampleNewServer() {
	t := &exampleT{} // in a test: the test's *testing.T
	defer t.done()

	srv := sshservetest.NewServer(t)
	srv.SeedRepo("PROJ", "repo")
	reader := srv.AddUser("reader", sshservetest.Read("PROJ/*"))

	cmd := exec.Command("git", "ls-remote", srv.URL("PROJ", "repo"), "refs/heads/main")
	cmd.Env = append(os.Environ(), reader.Env()...)
	out, err := cmd.Output()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	// Prints:
	// 301107291985a108dd280c9780b41e39e21b7f0a	refs/heads/main
}

// A test clones with go-git, which needs no git program: where git is missing
// the server serves from its go-git backend, with the same seeded history.
func ExampleServer_Auth() {
	t := &exampleT{} // in a test: the test's *testing.T
	defer t.done()

	srv := sshservetest.NewServer(t)
	srv.SeedRepo("PROJ", "repo")
	repo, err := git.PlainClone(t.TempDir(), false, &git.CloneOptions{URL: srv.URL("PROJ", "repo"), Auth: srv.Auth()})
	if err != nil {
		fmt.Println(err)
		return
	}
	head, err := repo.Head()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(head.Name(), head.Hash())
	// Output:
	// refs/heads/main 301107291985a108dd280c9780b41e39e21b7f0a
}

// TestCloneWithFixture clones with the real git over the real OpenSSH client as a
// read-only user and checks what the server counted.
func TestCloneWithFixture(t *testing.T) {
	testutil.Require(t, "git")
	testutil.Require(t, "ssh")
	srv := sshservetest.NewServer(t)
	head := srv.SeedRepo("PROJ", "repo")
	reader := srv.AddUser("reader", sshservetest.Read("PROJ/*"))

	dst := filepath.Join(t.TempDir(), "clone")
	cmd := exec.Command("git", "clone", "-q", srv.URL("PROJ", "repo"), dst)
	cmd.Env = append(os.Environ(), reader.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	out, err := exec.Command("git", "-C", dst, "rev-parse", "HEAD").Output()
	if err != nil || strings.TrimSpace(string(out)) != head {
		t.Fatalf("HEAD %q (%v), want %s", out, err, head)
	}
	if out, err := exec.Command("git", "-C", dst, "log", "--format=%s", "-1").Output(); err != nil || len(out) == 0 {
		t.Fatalf("log of the clone: %q, %v", out, err)
	}
	if got := srv.Stats().Sessions[gitfleet.UploadPack]; got != 1 {
		t.Fatalf("upload-pack sessions = %d, want 1", got)
	}
}
