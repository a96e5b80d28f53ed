package mesh_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
)

func TestServeGitProtocolEnv(t *testing.T) {
	s := openStore(t)
	ctx := ctxT(t)
	if err := s.Create(ctx, "PROJ", "r"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		env []string
		v2  bool
	}{
		{nil, false},
		{[]string{"GIT_PROTOCOL=version=2"}, true},
		{[]string{"GIT_PROTOCOL=version=1"}, false},
		{[]string{"GIT_PROTOCOL=version=2:object-format=sha256"}, false},
		{[]string{"GIT_PROTOCOL=version=3"}, false},
		{[]string{"GIT_PROTOCOL=version=2", "GIT_DIR=/etc", "GIT_CONFIG_PARAMETERS='core.sshCommand'='touch /tmp/x'"}, true},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.env, ","), func(t *testing.T) {
			var out, stderr bytes.Buffer
			err := s.ServeGit(ctx, request(gitfleet.UploadPack, "PROJ/r", c.env), strings.NewReader("0000"), &out, &stderr)
			if err != nil {
				t.Fatalf("%v: %s", err, stderr.String())
			}
			if got := strings.HasPrefix(out.String(), "000eversion 2\n"); got != c.v2 {
				t.Fatalf("v2 = %v, want %v; output %q", got, c.v2, out.String())
			}
		})
	}
}

func TestReposServeGitErrors(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s mesh.Repos, root string) {
		ctx := ctxT(t)
		if err := s.Create(ctx, "PROJ", "r"); err != nil {
			t.Fatal(err)
		}
		var out, stderr bytes.Buffer
		if err := s.ServeGit(ctx, request(gitfleet.Service("git-shell"), "PROJ/r", nil), nil, &out, &stderr); !errors.Is(err, mesh.ErrUnknownService) {
			t.Errorf("git-shell: %v", err)
		}
		if err := s.ServeGit(ctx, request(gitfleet.UploadPack, "PROJ/none", nil), nil, &out, &stderr); !errors.Is(err, mesh.ErrNotFound) {
			t.Errorf("missing repository: %v", err)
		}
		if err := s.ServeGit(ctx, gitfleet.GitRequest{Service: gitfleet.UploadPack, Repo: gitfleet.RepoName{Project: "..", Slug: "etc"}}, nil, &out, &stderr); !errors.Is(err, mesh.ErrInvalidName) {
			t.Errorf("bad path: %v", err)
		}
		// A protocol error makes git exit 128; the status is carried in the error,
		// and git's complaint arrives on stderr.
		stderr.Reset()
		err := s.ServeGit(ctx, request(gitfleet.ReceivePack, "PROJ/r", nil), strings.NewReader("zzzz garbage"), &out, &stderr)
		var ec interface{ ExitCode() int }
		if !errors.As(err, &ec) || ec.ExitCode() != 128 {
			t.Errorf("garbage to receive-pack: %v, want exit status 128", err)
		}
		if !strings.Contains(stderr.String(), "fatal") {
			t.Errorf("stderr = %q, want git's error", stderr.String())
		}
		// A fetch whose time is up does nothing.
		_, err = s.Fetch(ctx, "PROJ", "r", mesh.FetchOptions{URL: "file:///nonexistent", Timeout: time.Nanosecond})
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, mesh.ErrFetch) {
			t.Errorf("Fetch with an expired timeout: %v", err)
		}
	})
}

// TestServeGitCancel checks that ending the context kills git promptly even while
// it waits for input, and that Close stops running services.
func TestServeGitCancel(t *testing.T) {
	s := openStore(t)
	ctx := ctxT(t)
	if err := s.Create(ctx, "PROJ", "r"); err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"cancel", "close"} {
		t.Run(how, func(t *testing.T) {
			st := s
			if how == "close" {
				st = openStore(t)
				if err := st.Create(ctx, "PROJ", "r"); err != nil {
					t.Fatal(err)
				}
			}
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stdinR, stdinW := io.Pipe()
			defer stdinW.Close()
			outR, outW := io.Pipe()
			done := make(chan error, 1)
			go func() {
				done <- st.ServeGit(cctx, request(gitfleet.UploadPack, "PROJ/r", nil), stdinR, outW, io.Discard)
				outW.Close()
			}()
			// Wait for the advertisement (a flush-pkt for an empty repository) so git is
			// surely running and blocked on stdin.
			if _, err := io.ReadFull(outR, make([]byte, 4)); err != nil {
				t.Fatal(err, <-done)
			}
			go io.Copy(io.Discard, outR)
			if how == "cancel" {
				cancel()
			} else {
				go st.Close()
			}
			select {
			case err := <-done:
				var ec interface{ ExitCode() int }
				if !errors.As(err, &ec) || ec.ExitCode() != -1 {
					t.Fatalf("ServeGit = %v, want killed", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("ServeGit did not return after " + how)
			}
		})
	}
}

// TestIdleUploadPackDoesNotBlockPush: once an upload-pack has written its ref
// advertisement it holds no lock, so a client that stalls during negotiation does
// not hold up pushes.
func TestIdleUploadPackDoesNotBlockPush(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := ctxT(t)
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	for _, env := range [][]string{nil, {"GIT_PROTOCOL=version=2"}} {
		stdinR, stdinW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			done <- s.ServeGit(cctx, request(gitfleet.UploadPack, "PROJ/r", env), stdinR, outW, io.Discard)
			outW.Close()
		}()
		br := bufio.NewReader(outR)
		if env != nil {
			// v2: the capability advertisement, then one ls-refs round.
			readUntilFlush(t, br)
			io.WriteString(stdinW, "0014command=ls-refs\n0000")
		}
		readUntilFlush(t, br)
		go io.Copy(io.Discard, br)
		// The upload-pack now waits for the client; a push must go through.
		w := filepath.Join(t.TempDir(), "w")
		g.Run("", "clone", "-q", repoURL("PROJ", "r"), w)
		g.CommitFile(w, "n.txt", "n", "n")
		g.Run(w, "push", "-q", "origin", "HEAD:refs/heads/while-idle")
		cancel()
		stdinW.Close()
		<-done
	}
}

func readUntilFlush(t *testing.T, br *bufio.Reader) {
	t.Helper()
	hdr := make([]byte, 4)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			t.Fatal(err)
		}
		if string(hdr) == "0000" {
			return
		}
		var n int
		for _, c := range hdr {
			n = n*16 + strings.IndexByte("0123456789abcdef", c)
		}
		if n > 4 {
			if _, err := io.CopyN(io.Discard, br, int64(n-4)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestEventOverflowSendsGap(t *testing.T) {
	h := t.TempDir()
	s, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: h, EventBuffer: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := ctxT(t)
	sctx, cancel := context.WithCancel(ctx)
	events, err := s.Subscribe(sctx)
	if err != nil {
		t.Fatal(err)
	}
	// Nobody reads: creating many repositories must not block.
	for _, slug := range strings.Fields("a b c d e f g h i j k l") {
		if err := s.Create(ctx, "PROJ", slug); err != nil {
			t.Fatal(err)
		}
	}
	var got []mesh.Event
	gap := false
	for !gap {
		ev := nextEvent(t, events)
		got = append(got, ev)
		gap = ev.Type == mesh.EventGap
	}
	if len(got) > 6 {
		t.Fatalf("received %d events before the gap with a buffer of 4", len(got))
	}
	// After the gap, events flow again (some of the burst may follow the gap,
	// depending on when the forwarder took it).
	if err := s.Create(ctx, "PROJ", "after"); err != nil {
		t.Fatal(err)
	}
	for last := got[len(got)-1].Seq; ; {
		ev := nextEvent(t, events)
		if ev.Type != mesh.EventCreated || ev.Seq <= last {
			t.Fatalf("after the gap: %+v", ev)
		}
		last = ev.Seq
		if ev.Slug == "after" {
			break
		}
	}
	cancel()
	for range events {
	}
	// Close ends remaining subscriptions.
	events2, _ := s.Subscribe(ctx)
	s.Close()
	for range events2 {
	}
	if _, err := s.Subscribe(ctx); !errors.Is(err, mesh.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
	if err := s.Create(ctx, "PROJ", "late"); !errors.Is(err, mesh.ErrClosed) {
		t.Errorf("Create after Close: %v", err)
	}
}

// TestStalledPushDoesNotBlockClone: a pusher that has connected but sends nothing
// holds no lock (receive-pack takes the write lock only around its ref
// transactions), so clones and other pushes go through meanwhile.
func TestStalledPushDoesNotBlockClone(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, s mesh.Repos, root string) {
		ctx := ctxT(t)
		g := newGit(t, startGitServer(t, s))
		seed(t, g, s, "PROJ", "r")
		stdinR, stdinW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			done <- s.ServeGit(cctx, request(gitfleet.ReceivePack, "PROJ/r", nil), stdinR, outW, io.Discard)
			outW.Close()
		}()
		br := bufio.NewReader(outR)
		readUntilFlush(t, br) // receive-pack's advertisement: it now waits for commands
		go io.Copy(io.Discard, br)
		work := t.TempDir()
		g.Run(work, "clone", "-q", repoURL("PROJ", "r"), "w")
		w := filepath.Join(work, "w")
		id := g.CommitFile(w, "n.txt", "n", "n")
		g.Run(w, "push", "-q", "origin", "HEAD:refs/heads/meanwhile")
		if refs, _ := s.Refs(ctx, "PROJ", "r"); refs["refs/heads/meanwhile"] != id {
			t.Fatalf("push beside a stalled one: %v", refs["refs/heads/meanwhile"])
		}
		stdinW.Close() // the stalled pusher gives up
		<-done
		g.Fsck(filepath.Join(root, "PROJ", "r.git"))
	})
}

// TestSilentClientDoesNotBlockPush: an upload-pack client that never reads its ref
// advertisement (v0), never sends a command (v2), or sends ls-refs and never reads
// the reply (v2) holds no lock, so pushes go through meanwhile.
// stuckWriter is a client that never reads: a Write blocks until Close.
type stuckWriter struct {
	blocked chan struct{} // closed when the first Write blocks
	closed  chan struct{}
	once    sync.Once
	close   sync.Once
}

func newStuckWriter() *stuckWriter {
	return &stuckWriter{blocked: make(chan struct{}), closed: make(chan struct{})}
}

func (w *stuckWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.blocked) })
	<-w.closed
	return 0, io.ErrClosedPipe
}

func (w *stuckWriter) Close() error {
	w.close.Do(func() { close(w.closed) })
	return nil
}

func TestSilentClientDoesNotBlockPush(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	ctx := ctxT(t)
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	cases := []struct {
		name    string
		env     []string
		request string // what the client sends before falling silent
		late    bool   // send it once the server's first write is blocked
	}{
		{"v0 never reads", nil, "", false},
		{"v2 sends nothing", []string{"GIT_PROTOCOL=version=2"}, "", false},
		{"v2 never reads the ls-refs reply", []string{"GIT_PROTOCOL=version=2"}, "0014command=ls-refs\n0000", false},
		{"v2 asks ls-refs without reading the capabilities", []string{"GIT_PROTOCOL=version=2"}, "0014command=ls-refs\n0000", true},
	}
	for i, c := range cases {
		stdinR, stdinW := io.Pipe()
		outW := newStuckWriter() // nobody reads the client's side
		done := make(chan error, 1)
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			done <- s.ServeGit(cctx, request(gitfleet.UploadPack, "PROJ/r", c.env), stdinR, outW, io.Discard)
		}()
		// Also on failure: the silent client goes away, so the store can close.
		defer func() {
			cancel()
			stdinW.Close()
			outW.Close()
		}()
		if c.request != "" {
			go func() {
				if c.late {
					<-outW.blocked
				}
				io.WriteString(stdinW, c.request)
			}()
		}
		pushed := make(chan error, 1)
		go func() {
			w := filepath.Join(t.TempDir(), "w")
			if _, err := g.TryRun("", "clone", "-q", repoURL("PROJ", "r"), w); err != nil {
				pushed <- err
				return
			}
			g.CommitFile(w, "n.txt", c.name, c.name)
			_, err := g.TryRun(w, "push", "-q", "origin", fmt.Sprintf("HEAD:refs/heads/silent-%d", i))
			pushed <- err
		}()
		select {
		case err := <-pushed:
			if err != nil {
				t.Fatalf("%s: push failed: %v", c.name, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: a push waited for a silent upload-pack client", c.name)
		}
		cancel()
		stdinW.Close()
		outW.Close()
		<-done
	}
}
