package sshserve_test

import (
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// rawSession opens a session channel and runs command on it, without the Go
// client's Session, which ends its input by itself: the test decides when the
// client sends its EOF. It returns the channel and the channel's requests (the
// exit status arrives there; the channel's close closes it).
func rawSession(t *testing.T, srv *sshservetest.Server, command string) (ssh.Channel, <-chan *ssh.Request) {
	t.Helper()
	c, err := dialGo(t, srv, ssh.PublicKeys(srv.User.Signer))
	if err != nil {
		t.Fatal(err)
	}
	ch, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{command}))
	if err != nil || !ok {
		t.Fatalf("exec %q: ok=%v err=%v", command, ok, err)
	}
	return ch, reqs
}

// awaitExitStatus reads the command's output to its end and returns once the
// exit status has arrived.
func awaitExitStatus(t *testing.T, ch ssh.Channel, reqs <-chan *ssh.Request) {
	t.Helper()
	if _, err := io.Copy(io.Discard, ch); err != nil {
		t.Fatal(err)
	}
	for req := range reqs {
		if req.Type == "exit-status" {
			return
		}
	}
	t.Fatal("the channel closed without an exit status")
}

// awaitClose waits for the server to close the channel, for at most limit.
func awaitClose(t *testing.T, reqs <-chan *ssh.Request, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case _, ok := <-reqs:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("the server did not close the channel within %v", limit)
		}
	}
}

// TestInputEndWait: a git session that has ended keeps its channel open until
// the client ends its input, so a client that sends its EOF after reading the
// answer (go-git v5 does, and fails the push or fetch when the channel is gone)
// can still send it; the server then closes at once. A negative InputEndWait
// closes right after the exit status; a refusal and whoami never wait (git
// keeps its input open after a refusal, and a terminal never ends it).
func TestInputEndWait(t *testing.T) {
	const long = time.Minute
	// A protocol v0 upload-pack ends when the client asks for nothing: the
	// flush-pkt in place of its wants.
	uploadPack := func(t *testing.T, srv *sshservetest.Server) (ssh.Channel, <-chan *ssh.Request) {
		ch, reqs := rawSession(t, srv, "git-upload-pack 'PROJ/repo.git'")
		if _, err := ch.Write([]byte("0000")); err != nil {
			t.Fatal(err)
		}
		awaitExitStatus(t, ch, reqs)
		return ch, reqs
	}

	t.Run("waits for the client's EOF", func(t *testing.T) {
		srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.InputEndWait = long })
		srv.SeedRepo("PROJ", "repo")
		ch, reqs := uploadPack(t, srv)
		// A client slow to end its input: the channel is still open.
		time.Sleep(300 * time.Millisecond)
		if err := ch.CloseWrite(); err != nil {
			t.Fatalf("the client's EOF after the exit status: %v, want the channel still open", err)
		}
		// The server closes on the EOF, not at the end of InputEndWait.
		awaitClose(t, reqs, long/4)
	})
	t.Run("negative closes at once", func(t *testing.T) {
		srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.InputEndWait = -1 })
		srv.SeedRepo("PROJ", "repo")
		ch, reqs := uploadPack(t, srv)
		awaitClose(t, reqs, long/4)
		if err := ch.CloseWrite(); !errors.Is(err, io.EOF) {
			t.Fatalf("the client's EOF after the server's close: %v, want io.EOF", err)
		}
	})
	t.Run("a refusal does not wait", func(t *testing.T) {
		srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.InputEndWait = long })
		ch, reqs := rawSession(t, srv, "git-upload-pack 'PROJ/missing.git'")
		awaitExitStatus(t, ch, reqs)
		awaitClose(t, reqs, long/4)
	})
	t.Run("whoami does not wait", func(t *testing.T) {
		srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.InputEndWait = long })
		ch, reqs := rawSession(t, srv, "whoami")
		awaitExitStatus(t, ch, reqs)
		awaitClose(t, reqs, long/4)
	})
}
