package sshserve_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// TestGreeting runs the real OpenSSH client as users check their setup: ssh -T
// git@host, and ssh with no command at all. Both print the greeting naming the
// principal and end with exit status 1, as GitHub and Gitea answer.
func TestGreeting(t *testing.T) {
	srv := sshservetest.NewServer(t)
	alice := srv.AddUser("alice")
	want := "Hi alice! You've successfully authenticated, but gitfleet does not provide shell access.\n"
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"ssh -T", []string{"-T"}},
		{"ssh without a command", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := sshAs(t, srv, alice).Run(tc.args...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("%v, want exit status 1; stderr %q", err, stderr)
			}
			if stderr != want || stdout != "" {
				t.Fatalf("stderr %q stdout %q, want stderr %q", stderr, stdout, want)
			}
		})
	}
	if n := srv.Stats().Greetings; n != 2 {
		t.Fatalf("Stats.Greetings = %d, want 2", n)
	}
}

// TestGreetingCustom shows an embedder's own text replacing the default.
func TestGreetingCustom(t *testing.T) {
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) {
		s.Greeting = func(p sshserve.Principal) string { return "Welcome, " + p.Name + ". Clone with git.\n" }
	})
	_, stderr, err := sshAs(t, srv, srv.User).Run("-T")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("%v, want exit status 1; stderr %q", err, stderr)
	}
	if want := "Welcome, " + sshservetest.DefaultUser + ". Clone with git.\n"; stderr != want {
		t.Fatalf("stderr %q, want %q", stderr, want)
	}
}

// TestGreetingTerminal logs in as a user does at a terminal, ssh git@host with
// no command (the script program gives ssh a pseudo-terminal): OpenSSH asks for
// a pty, reports that the server refused it and goes on to the greeting, as
// against GitHub.
func TestGreetingTerminal(t *testing.T) {
	script := testutil.Require(t, "script")
	srv := sshservetest.NewServer(t)
	ssh := sshAs(t, srv, srv.User).Command()
	words := make([]string, len(ssh.Args))
	for i, a := range ssh.Args {
		words[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	cmd := exec.Command(script, "-q", "-e", "-c", strings.Join(words, " "), "/dev/null")
	cmd.Env = ssh.Env
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("%v, want exit status 1: %q", err, out)
	}
	text := strings.ReplaceAll(string(out), "\r\n", "\n") // the terminal's line ends
	mustContain(t, "terminal", text, "PTY allocation request failed")
	mustContain(t, "terminal", text, sshserve.DefaultGreeting(sshserve.Principal{Name: sshservetest.DefaultUser}))
}
