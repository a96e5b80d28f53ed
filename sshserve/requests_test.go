package sshserve_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// TestRefusedRequests sends what an interactive or tunnelling client would, over
// the Go client (which reports each answer) and the OpenSSH client.
func TestRefusedRequests(t *testing.T) {
	srv := sshservetest.NewServer(t)
	srv.SeedRepo("PROJ", "repo")
	c, err := dialGo(t, srv, ssh.PublicKeys(srv.User.Signer))
	if err != nil {
		t.Fatal(err)
	}
	newSession := func(t *testing.T) *ssh.Session {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}

	t.Run("shell greets and exits 1", func(t *testing.T) {
		s := newSession(t)
		var stderr, stdout bytes.Buffer
		s.Stderr, s.Stdout = &stderr, &stdout
		if err := s.Shell(); err != nil {
			t.Fatalf("shell request refused: %v", err)
		}
		err := s.Wait()
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 1 {
			t.Fatalf("shell: %v, want exit status 1", err)
		}
		if want := sshserve.DefaultGreeting(sshserve.Principal{Name: srv.User.Name}); stderr.String() != want || stdout.Len() != 0 {
			t.Fatalf("shell: stderr %q stdout %q, want stderr %q", stderr.String(), stdout.String(), want)
		}
	})
	t.Run("shell after exec", func(t *testing.T) {
		s := newSession(t)
		if err := s.Start("whoami"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := s.SendRequest("shell", true, nil); ok {
			t.Fatal("a shell after an exec on one session was accepted")
		}
	})
	t.Run("pty", func(t *testing.T) {
		if err := newSession(t).RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err == nil {
			t.Fatal("pty accepted")
		}
	})
	t.Run("subsystem", func(t *testing.T) {
		if err := newSession(t).RequestSubsystem("sftp"); err == nil {
			t.Fatal("sftp subsystem accepted")
		}
	})
	t.Run("x11 and agent", func(t *testing.T) {
		s := newSession(t)
		for _, req := range []string{"x11-req", "auth-agent-req@openssh.com"} {
			ok, err := s.SendRequest(req, true, nil)
			if err != nil || ok {
				t.Fatalf("%s: ok=%v err=%v", req, ok, err)
			}
		}
	})
	t.Run("env", func(t *testing.T) {
		s := newSession(t)
		for _, kv := range [][2]string{{"LD_PRELOAD", "/tmp/x.so"}, {"GIT_PROTOCOL", "version=3"},
			{"GIT_PROTOCOL", "version=2:x"}, {"GIT_PROTOCOL", ""}, {"PATH", "/tmp"}, {"GIT_DIR", "/"}} {
			if err := s.Setenv(kv[0], kv[1]); err == nil {
				t.Errorf("env %s=%q accepted", kv[0], kv[1])
			}
		}
		if err := s.Setenv("GIT_PROTOCOL", "version=2"); err != nil {
			t.Fatalf("GIT_PROTOCOL=version=2 refused: %v", err)
		}
		// The protocol version reaches git: a v2 server starts with "version 2".
		var out bytes.Buffer
		s.Stdout = &out
		stdin, _ := s.StdinPipe()
		if err := s.Start("git-upload-pack 'PROJ/repo.git'"); err != nil {
			t.Fatal(err)
		}
		stdin.Write([]byte("0000"))
		stdin.Close()
		s.Wait()
		if !strings.HasPrefix(out.String(), "000eversion 2\n") {
			t.Fatalf("upload-pack did not speak v2: %q", out.String())
		}
	})
	t.Run("direct-tcpip", func(t *testing.T) {
		if _, err := c.Dial("tcp", "127.0.0.1:22"); err == nil {
			t.Fatal("port forwarding accepted")
		}
	})
	t.Run("tcpip-forward", func(t *testing.T) {
		if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
			t.Fatal("remote forwarding accepted")
		}
	})
	t.Run("other channel types", func(t *testing.T) {
		for _, typ := range []string{"direct-streamlocal@openssh.com", "x11", "auth-agent@openssh.com"} {
			_, _, err := c.OpenChannel(typ, nil)
			var oce *ssh.OpenChannelError
			if !errors.As(err, &oce) || oce.Reason != ssh.Prohibited {
				t.Fatalf("%s: %v", typ, err)
			}
		}
	})
	t.Run("second exec", func(t *testing.T) {
		s := newSession(t)
		if err := s.Start("whoami"); err != nil {
			t.Fatal(err)
		}
		ok, _ := s.SendRequest("exec", true, ssh.Marshal(struct{ C string }{"whoami"}))
		if ok {
			t.Fatal("a second exec on one session was accepted")
		}
	})
	t.Run("unknown commands", func(t *testing.T) {
		for _, cmd := range []string{"ls /", "sh -c id", "git-upload-pack '../../etc/passwd'", "git-upload-pack '--upload-pack=id'",
			"git-upload-pack 'PROJ/repo'; id", "git-upload-pack '$(id)'", "git config -l", "scp -f /etc/passwd",
			"git-upload-pack '/PROJ/../x'", "git-upload-pack 'PROJ/re\x00po'", "git-upload-pack 'PROJ/repo'\nid",
			"git-upload-pack '" + strings.Repeat("a", 10000) + "'", `git-upload-pack 'PROJ/a'\''b'`, "git-upload-pack --upload-pack=id 'PROJ/repo'"} {
			s := newSession(t)
			var stderr, stdout bytes.Buffer
			s.Stderr, s.Stdout = &stderr, &stdout
			err := s.Run(cmd)
			var ee *ssh.ExitError
			if !errors.As(err, &ee) || ee.ExitStatus() != 1 {
				t.Fatalf("%q: %v, want exit status 1", cmd, err)
			}
			if n := strings.Count(stderr.String(), "\n"); n != 1 || !strings.HasPrefix(stderr.String(), "gitfleet: ") || stdout.Len() != 0 {
				t.Fatalf("%q: stderr %q stdout %q", cmd, stderr.String(), stdout.String())
			}
		}
	})
	t.Run("absolute path names a repository, never a file", func(t *testing.T) {
		for _, cmd := range []string{"git-upload-pack '/etc/passwd'", "git-upload-archive '/etc/shadow'"} {
			s := newSession(t)
			var stderr bytes.Buffer
			s.Stderr = &stderr
			err := s.Run(cmd)
			var ee *ssh.ExitError
			if !errors.As(err, &ee) || ee.ExitStatus() != 1 || stderr.String() != sshserve.NotFoundMessage {
				t.Fatalf("%q: %v, stderr %q", cmd, err, stderr.String())
			}
		}
	})
	t.Run("OpenSSH forced pty", func(t *testing.T) {
		// The pty is refused; asked for with -t, OpenSSH makes that fatal
		// (exit status 255), as against GitHub. See TestGreetingTerminal for
		// an interactive login without -t.
		cmd := sshAs(t, srv, srv.User).Command("-tt")
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("interactive login succeeded: %s", out)
		}
		mustContain(t, "ssh output", string(out), "PTY allocation request failed")
	})
	t.Run("OpenSSH forwarding", func(t *testing.T) {
		// Remote forwarding is refused at once, and ExitOnForwardFailure turns
		// that into an error (a local forward is only refused when used: see
		// direct-tcpip above).
		cmd := sshAs(t, srv, srv.User).Command("-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22", "-N")
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("remote forward accepted: %s", out)
		}
		mustContain(t, "ssh output", string(out), "forwarding failed")
	})
	st := srv.Stats()
	if st.Rejected[sshserve.RejectRequest] == 0 || st.Rejected[sshserve.RejectChannelType] == 0 {
		t.Fatalf("rejections not counted: %+v", st.Rejected)
	}
}
