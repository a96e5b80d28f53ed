//go:build unix

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

// The tests of cancellation drive process groups and signals, which Windows
// lacks (see TerminateGroup there).

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
	// stdin stays open until git has handled the signal (its lock is gone):
	// end of input after "prepare" would let git commit the transaction if it
	// read it before the signal arrived. Then Wait can finish the copy of stdin.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(lock); os.IsNotExist(err) {
			break
		}
	}
	pw.Close()
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
