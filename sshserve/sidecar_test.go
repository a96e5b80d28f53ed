package sshserve_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// sidecarRequests records the requests a sidecar Server receives.
type sidecarRequests struct {
	mu   sync.Mutex
	reqs []string
}

func (r *sidecarRequests) hook(method, path string) {
	r.mu.Lock()
	r.reqs = append(r.reqs, method+" "+path)
	r.mu.Unlock()
}

// take returns the requests recorded since the last call.
func (r *sidecarRequests) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// TestCloneThroughSidecarRequests counts what one real git clone over sshserve
// costs the storage sidecar when the backend is a mesh.Client: the command is
// parsed once, at the SSH server, and the sidecar sees exactly two requests (the
// upgraded git stream and its result), with no existence call. The result request
// goes over the client's keep-alive connection, so a second clone opens one new
// connection only, for its stream. A clone of a missing repository costs one
// request, and the client sees Repository not found.
func TestCloneThroughSidecarRequests(t *testing.T) {
	ctx := context.Background()
	key, err := mesh.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	l, err := mesh.Listen(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := mesh.NewClient(mesh.ClientConfig{Addr: l.Addr().String(), Key: key})
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.Backend = client })
	var seen sidecarRequests
	conns := &countingListener{Listener: l}
	side := &mesh.Server{Store: srv.Store, Key: key, RequestHook: seen.hook}
	served := make(chan error, 1)
	go func() { served <- side.Serve(conns) }()
	t.Cleanup(func() {
		client.Close()
		side.Close()
		<-served
	})
	head := srv.SeedRepo("PROJ", "repo")
	g := gitAs(t, srv.User)
	want := []string{"POST /v1/git", "GET /v1/git/result"}

	for i, proto := range []string{"2", "0"} {
		before := conns.n.Load()
		dst := tempDir(t, "clone-v"+proto)
		g.Run("", "-c", "protocol.version="+proto, "clone", "-q", "--bare", srv.URL("PROJ", "repo"), dst)
		if got := strings.TrimSpace(g.Run(dst, "rev-parse", "HEAD")); got != head {
			t.Fatalf("clone %d: HEAD %s, want %s", i, got, head)
		}
		if got := seen.take(); !slices.Equal(got, want) {
			t.Fatalf("clone %d (protocol v%s): sidecar requests %q, want %q", i, proto, got, want)
		}
		// The first clone may have to open the keep-alive connection; every later
		// one reuses it for the result and opens one for its stream only.
		if n := conns.n.Load() - before; i > 0 && n != 1 {
			t.Fatalf("clone %d: %d new sidecar connections, want 1 (the result request reuses a kept-alive one)", i, n)
		}
	}

	_, err = g.TryRun("", "clone", "-q", srv.URL("PROJ", "missing"), tempDir(t, "missing"))
	if err == nil {
		t.Fatal("a missing repository was cloned")
	}
	mustContain(t, "git clone output", err.Error(), "Repository not found")
	if got := seen.take(); !slices.Equal(got, want[:1]) {
		t.Fatalf("missing repository: sidecar requests %q, want %q", got, want[:1])
	}
}
