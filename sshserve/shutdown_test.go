package sshserve_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// gatedBackend holds every ServeGit call until release is closed.
type gatedBackend struct {
	sshserve.GitBackend
	started chan string
	release chan struct{}
}

func (g *gatedBackend) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	g.started <- string(req.Service)
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.GitBackend.ServeGit(ctx, req, stdin, stdout, stderr)
}

func gate(g *gatedBackend) sshservetest.Option {
	return func(s *sshserve.Server) {
		g.GitBackend = s.Backend
		s.Backend = g
	}
}

// TestShutdownLetsACloneFinish starts a real clone, shuts the server down while the
// clone is in flight, and checks that new connections are refused, the clone
// completes, and Shutdown returns nil.
func TestShutdownLetsACloneFinish(t *testing.T) {
	g := &gatedBackend{started: make(chan string, 1), release: make(chan struct{})}
	srv := sshservetest.NewServer(t, gate(g))
	head := srv.SeedRepo("PROJ", "repo")
	git := gitAs(t, srv.User)
	dst := tempDir(t, "clone")
	cloned := make(chan error, 1)
	go func() {
		_, err := git.TryRun("", "clone", "-q", srv.URL("PROJ", "repo"), dst)
		cloned <- err
	}()
	<-g.started

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// The listener closes: new connections are refused while the clone runs.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", srv.Addr(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections during Shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a clone in flight", err)
	case err := <-cloned:
		t.Fatalf("clone ended before it was released: %v", err)
	default:
	}
	close(g.release)
	if err := <-cloned; err != nil {
		t.Fatalf("clone in flight during Shutdown failed: %v", err)
	}
	if got := strings.TrimSpace(git.Run(dst, "rev-parse", "HEAD")); got != head {
		t.Fatalf("clone HEAD %s, want %s", got, head)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := srv.Serve(testutil.Listen(t)); !errors.Is(err, sshserve.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
}

// TestShutdownDeadlineClosesSessions shows the other end: when the context ends
// first, running sessions are cut and Shutdown reports the context's error.
func TestShutdownDeadlineClosesSessions(t *testing.T) {
	g := &gatedBackend{started: make(chan string, 1), release: make(chan struct{})}
	srv := sshservetest.NewServer(t, gate(g))
	srv.SeedRepo("PROJ", "repo")
	git := gitAs(t, srv.User)
	cloned := make(chan error, 1)
	go func() {
		_, err := git.TryRun("", "clone", "-q", srv.URL("PROJ", "repo"), tempDir(t, "clone"))
		cloned <- err
	}()
	<-g.started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if err := <-cloned; err == nil {
		t.Fatal("a clone cut by Close succeeded")
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
