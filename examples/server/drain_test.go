//go:build unix

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestCloneCompletesDuringDrain starts a clone whose client reads slowly, sends
// SIGTERM while it is in flight, and finds that the clone completes, new
// connections are refused, and the server exits 0.
func TestCloneCompletesDuringDrain(t *testing.T) {
	n := startNode(t, testutil.ServerOptions{})
	g, key := setupUserRepo(t, n)
	work := t.TempDir()
	src := filepath.Join(t.TempDir(), "src.git")
	testutil.GenerateRepo(t, src, testutil.SmallRepo)
	g.Run(src, "push", "-q", n.SSHURL("PROJ", "repo"), "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
	want := g.Refs(src)["refs/heads/main"]

	// A client that holds the server's output for a while before reading it.
	slow := filepath.Join(t.TempDir(), "slow-ssh")
	script := "#!/bin/sh\n" + testutil.SSHCommand(key.Path, n.KnownHosts(t, 0)) + " \"$@\" | { sleep 3; cat; }\n"
	if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	gs := testutil.NewGit(t)
	gs.SetEnv("GIT_SSH_COMMAND", slow)
	authenticated := strings.Count(n.Stderr.String(), "msg=authenticated")
	clone := gs.Command(work, "clone", "-q", n.SSHURL("PROJ", "repo"), "c")
	var out testutil.LockedBuffer
	clone.Stdout, clone.Stderr = &out, &out
	if err := clone.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Count(n.Stderr.String(), "msg=authenticated") > authenticated })
	n.Cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, func() bool { return strings.Contains(n.Stderr.String(), "shutting down") })
	// New connections are refused while the drain runs.
	if _, err := g.TryRun(work, "ls-remote", n.SSHURL("PROJ", "repo")); err == nil {
		t.Error("a new connection was served during the drain")
	}
	if err := clone.Wait(); err != nil {
		t.Fatalf("clone in flight failed during the drain: %v\n%s\nserver:\n%s", err, out.String(), n.Stderr)
	}
	if got := strings.TrimSpace(gs.Run(filepath.Join(work, "c"), "rev-parse", "HEAD")); got != want {
		t.Fatalf("cloned HEAD %s, want %s", got, want)
	}
	if err := n.Wait(); err != nil {
		t.Fatalf("server exit after drain: %v\n%s", err, n.Stderr)
	}
}

// TestSecondSignalExitsAtOnce: a second SIGTERM during the drain ends the server
// at once, without waiting for the session in flight.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	n := startNode(t, testutil.ServerOptions{})
	g, key := setupUserRepo(t, n)
	slow := filepath.Join(t.TempDir(), "slow-ssh")
	script := "#!/bin/sh\n" + testutil.SSHCommand(key.Path, n.KnownHosts(t, 0)) + " \"$@\" | { sleep 600; cat; }\n"
	if err := os.WriteFile(slow, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	g.SetEnv("GIT_SSH_COMMAND", slow)
	authenticated := strings.Count(n.Stderr.String(), "msg=authenticated")
	clone := g.Command(t.TempDir(), "clone", "-q", n.SSHURL("PROJ", "repo"), "c")
	clone.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := clone.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-clone.Process.Pid, syscall.SIGKILL); clone.Wait() })
	waitFor(t, func() bool { return strings.Count(n.Stderr.String(), "msg=authenticated") > authenticated })
	n.Cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, func() bool { return strings.Contains(n.Stderr.String(), "shutting down") })
	err := n.Stop(syscall.SIGTERM) // the drain would wait up to a minute for the clone
	var ee *exec.ExitError
	if !errorAs(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(n.Stderr.String(), "second signal") {
		t.Fatalf("second signal: exit %v\n%s", err, n.Stderr)
	}
}
