package gitexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseVersion(t *testing.T) {
	cases := []struct {
		in   string
		want Version
		err  bool
	}{
		{"git version 2.39.5\n", Version{2, 39, 5}, false},
		{"git version 2.31.0", Version{2, 31, 0}, false},
		{"git version 2.45.1.windows.1", Version{2, 45, 1}, false},
		{"git version 2.50.0-rc1", Version{2, 50, 0}, false},
		{"git version 2.30", Version{2, 30, 0}, false},
		{"hg version 2", Version{}, true},
		{"git version x.y", Version{}, true},
		{"", Version{}, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseVersion(c.in)
			if (err != nil) != c.err {
				t.Fatalf("ParseVersion(%q) error = %v, want error %v", c.in, err, c.err)
			}
			if got != c.want {
				t.Fatalf("ParseVersion(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestRequire(t *testing.T) {
	err := Require(Version{2, 30, 9})
	if !errors.Is(err, ErrTooOld) {
		t.Fatalf("Require(2.30.9) = %v, want ErrTooOld", err)
	}
	if !strings.Contains(err.Error(), "git >= 2.31 is required, found 2.30.9") {
		t.Fatalf("message %q does not say what is required and found", err)
	}
	for _, v := range []Version{{2, 31, 0}, {2, 39, 5}, {3, 0, 0}} {
		if err := Require(v); err != nil {
			t.Errorf("Require(%v) = %v, want nil", v, err)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	v, err := CheckVersion(context.Background())
	if err != nil {
		t.Fatalf("CheckVersion: %v", err)
	}
	if v.Major < 2 {
		t.Fatalf("implausible version %v", v)
	}
}

func TestEnvIsSanitised(t *testing.T) {
	t.Setenv("GIT_DIR", "/tmp/evil")
	t.Setenv("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='/tmp/evil'")
	env := Env("GIT_PROTOCOL=version=2")
	for _, kv := range env {
		if strings.HasPrefix(kv, "GIT_DIR=") || strings.HasPrefix(kv, "GIT_CONFIG_PARAMETERS=") {
			t.Fatalf("inherited %q", kv)
		}
	}
	if env[len(env)-1] != "GIT_PROTOCOL=version=2" {
		t.Fatalf("extra env not last: %v", env)
	}
	// git itself must not see the user's configuration.
	t.Setenv("HOME", t.TempDir())
	if err := os.WriteFile(os.Getenv("HOME")+"/.gitconfig", []byte("[user]\n\tname = leaked\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := Run(context.Background(), "", nil, "config", "--get", "user.name")
	if err == nil {
		t.Fatalf("git saw user configuration: %q", out)
	}
	var ge *Error
	if !errors.As(err, &ge) || ge.ExitCode() != 1 {
		t.Fatalf("want *Error with exit 1 (key not found), got %v", err)
	}
}

func TestRunErrorCarriesStderr(t *testing.T) {
	_, err := Run(context.Background(), t.TempDir(), nil, "rev-parse", "--verify", "no-such-ref")
	var ge *Error
	if !errors.As(err, &ge) {
		t.Fatalf("want *Error, got %v", err)
	}
	if ge.ExitCode() == 0 || !strings.Contains(ge.Error(), "fatal") {
		t.Fatalf("error lacks exit code or stderr: %v (code %d)", ge, ge.ExitCode())
	}
}

func TestCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	if _, err := Run(context.Background(), dir, nil, "init", "-q"); err != nil {
		t.Fatal(err)
	}
	// An alias that starts a shell which starts a long sleep: both must die.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Run(ctx, dir, nil, "-c", "alias.nap=!sleep 30 & sleep 30", "nap")
	if err == nil {
		t.Fatal("cancelled command succeeded")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("cancel did not kill the group promptly: %v", d)
	}
	var ge *Error
	if !errors.As(err, &ge) || ge.ExitCode() != -1 {
		t.Fatalf("want a killed *Error, got %v", err)
	}
}

// TestCancelLetsGitRemoveItsLocks holds a ref lock open in a prepared transaction
// (git update-ref --stdin waiting for more input) and cancels: git gets SIGTERM
// first and removes the lock, where SIGKILL would leave it to refuse every later
// update of that ref.
func TestCancelLetsGitRemoveItsLocks(t *testing.T) {
	dir := t.TempDir()
	if _, err := Run(context.Background(), dir, nil, "init", "-q", "--bare"); err != nil {
		t.Fatal(err)
	}
	tree, err := Run(context.Background(), dir, strings.NewReader(""), "hash-object", "-t", "tree", "-w", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	commit, err := Run(context.Background(), dir, nil, "-c", "user.name=t", "-c", "user.email=t@example.com",
		"commit-tree", "-m", "m", strings.TrimSpace(string(tree)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, dir, pr, "update-ref", "--stdin")
		done <- err
	}()
	fmt.Fprintf(pw, "start\nupdate refs/heads/x %s\nprepare\n", strings.TrimSpace(string(commit)))
	lock := filepath.Join(dir, "refs", "heads", "x.lock")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(lock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("git never took the ref lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	pw.Close() // Wait waits for the copy of stdin, which reads from pr
	if err := <-done; err == nil {
		t.Fatal("cancelled update-ref succeeded")
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Fatalf("lock file after cancel: %v (want it removed)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "refs", "heads", "x")); !os.IsNotExist(err) {
		t.Fatalf("ref written by a cancelled transaction: %v", err)
	}
}

// TestCancelKillsWhatIgnoresTerm: group members that ignore SIGTERM are killed
// TermGrace later, so nothing outlives the command.
func TestCancelKillsWhatIgnoresTerm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	cmd := Command(ctx, t.TempDir(), nil, "-c", "alias.stubborn=!trap '' TERM; sleep 30; sleep 30", "stubborn")
	var out strings.Builder
	cmd.Stdout = &out
	start := time.Now()
	if err := cmd.Run(); err == nil {
		t.Fatal("cancelled command succeeded")
	}
	if d := time.Since(start); d < TermGrace {
		t.Fatalf("ended after %v, before the SIGTERM grace of %v: was SIGTERM not ignored?", d, TermGrace)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(-cmd.Process.Pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("a process that ignores SIGTERM outlived the grace")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
