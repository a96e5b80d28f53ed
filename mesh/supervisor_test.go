//go:build linux

// The Supervisor tests read /proc (processes, their sockets and working
// directories) and signal process groups: they run on Linux.

package mesh_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// waitFor polls cond until it holds, failing the test after a generous guard time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// processesIn returns the pids of processes whose working directory is dir.
func processesIn(dir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestSidecarPortFallback(t *testing.T) {
	t.Parallel()
	held := testutil.Listen(t)
	port := held.Addr().(*net.TCPAddr).Port
	sup, _ := startSupervisor(t, port)
	st := sup.State()
	ap, err := net.ResolveTCPAddr("tcp", st.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if ap.Port == port || !ap.IP.IsLoopback() {
		t.Fatalf("sidecar on %s with port %d held", st.Addr, port)
	}
	if st.Phase != mesh.PhaseReady || st.PID <= 0 || st.Restarts != 0 {
		t.Fatalf("state %+v", st)
	}
	c := sup.Client()
	if c.Addr() != st.Addr {
		t.Fatalf("client at %s, sidecar at %s", c.Addr(), st.Addr)
	}
	ctx := ctxT(t)
	if err := c.Create(ctx, "PROJ", "r"); err != nil {
		t.Fatal(err)
	}
	if list, err := c.List(ctx); err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	// Every listening socket of the child is on loopback.
	for _, l := range listeningSockets(t, st.PID) {
		if !strings.HasPrefix(l, "127.") {
			t.Errorf("sidecar listens on %s", l)
		}
	}
}

// listeningSockets returns the local addresses of the TCP sockets pid listens on.
func listeningSockets(t *testing.T, pid int) []string {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			out = append(out, decodeProcAddr(f[1]))
		}
	}
	if len(out) == 0 {
		t.Fatal("found no listening socket of the sidecar")
	}
	return out
}

func decodeProcAddr(s string) string {
	host, port, _ := strings.Cut(s, ":")
	p, _ := strconv.ParseUint(port, 16, 16)
	if len(host) == 8 {
		v, _ := strconv.ParseUint(host, 16, 32)
		return fmt.Sprintf("%d.%d.%d.%d:%d", byte(v), byte(v>>8), byte(v>>16), byte(v>>24), p)
	}
	return host + ":" + strconv.Itoa(int(p))
}

func TestClientDeadSidecar(t *testing.T) {
	ctx := ctxT(t)
	key, _ := mesh.NewKey()
	c := mesh.NewClient(mesh.ClientConfig{Addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), Key: key})
	defer c.Close()
	if _, err := c.List(ctx); !errors.Is(err, mesh.ErrUnavailable) {
		t.Errorf("List: %v, want ErrUnavailable", err)
	}
	if _, err := c.Subscribe(ctx); !errors.Is(err, mesh.ErrUnavailable) {
		t.Errorf("Subscribe: %v, want ErrUnavailable", err)
	}
	err := c.ServeGit(ctx, request(gitfleet.UploadPack, "PROJ/r", nil), strings.NewReader(""), io.Discard, io.Discard)
	if !errors.Is(err, mesh.ErrUnavailable) {
		t.Errorf("ServeGit: %v, want ErrUnavailable", err)
	}
	// A sidecar that accepts but never answers: the call timeout ends the wait.
	hung := testutil.Listen(t)
	c2 := mesh.NewClient(mesh.ClientConfig{Addr: hung.Addr().String(), Key: key, CallTimeout: 500 * time.Millisecond})
	defer c2.Close()
	if _, err := c2.Exists(ctx, "PROJ", "r"); !errors.Is(err, mesh.ErrUnavailable) {
		t.Errorf("Exists against a hung sidecar: %v, want ErrUnavailable", err)
	}
}

// pausingBackend runs fn once, the first time a git service has written more than
// after bytes of output, before passing those bytes on.
type pausingBackend struct {
	gitBackend
	after int
	once  *sync.Once
	fn    func()
}

func (p pausingBackend) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	return p.gitBackend.ServeGit(ctx, req, stdin, &pausingWriter{w: stdout, p: p}, stderr)
}

type pausingWriter struct {
	w io.Writer
	n int
	p pausingBackend
}

func (w *pausingWriter) Write(b []byte) (int, error) {
	w.n += len(b)
	if w.n > w.p.after {
		w.p.once.Do(w.p.fn)
	}
	return w.w.Write(b)
}

// TestSupervisorKillMidClone kills the sidecar with SIGKILL in the middle of a
// clone: the clone fails cleanly, the supervisor brings a new sidecar up, and the
// next clone succeeds.
func TestSupervisorKillMidClone(t *testing.T) {
	t.Parallel()
	sup, root := startSupervisor(t, freePort(t))
	c := sup.Client()
	ctx := ctxT(t)
	src := testutil.CachedRepo(t, testutil.Preset40k)
	if _, err := c.Fetch(ctx, "PROJ", "big", mesh.FetchOptions{URL: "file://" + src}); err != nil {
		t.Fatal(err)
	}
	pid := sup.State().PID
	var once sync.Once
	var clientErr error
	backend := pausingBackend{gitBackend: c, after: 1 << 20, once: &once, fn: func() {
		syscall.Kill(pid, syscall.SIGKILL)
		waitFor(t, "the old sidecar to die", func() bool { return sup.State().PID != pid })
	}}
	g := newGit(t, startGitServer(t, backend))
	work := t.TempDir()
	_, clientErr = g.TryRun(work, "clone", "-q", "--bare", repoURL("PROJ", "big"), "first.git")
	if clientErr == nil {
		t.Fatal("the clone survived the sidecar's death")
	}
	t.Logf("clone failed as expected: %v", clientErr)
	if _, err := os.Stat(filepath.Join(work, "first.git")); !os.IsNotExist(err) {
		t.Errorf("the failed clone left %s behind", filepath.Join(work, "first.git"))
	}
	waitFor(t, "the sidecar to come back", func() bool { return sup.State().Phase == mesh.PhaseReady })
	st := sup.State()
	if st.Restarts != 1 || st.PID == pid || !strings.Contains(st.LastExit, "killed") {
		t.Fatalf("state after the kill: %+v", st)
	}
	g2 := newGit(t, startGitServer(t, c))
	g2.Run(work, "clone", "-q", "--bare", repoURL("PROJ", "big"), "second.git")
	g2.Fsck(filepath.Join(work, "second.git"))
	g2.Fsck(filepath.Join(root, "PROJ", "big.git"))
}

// TestSupervisorKillDuringPush kills the sidecar while receive-pack updates 300
// refs one by one (a push without --atomic): afterwards every ref is either absent
// (old) or at the pushed commit (new), the repository is intact, and the next push
// of the same refs goes through (no stale lock files block it).
func TestSupervisorKillDuringPush(t *testing.T) {
	t.Parallel()
	const nrefs = 300
	sup, root := startSupervisor(t, freePort(t))
	c := sup.Client()
	ctx := ctxT(t)
	g := newGit(t, startGitServer(t, c))
	seed(t, g, c, "PROJ", "r")
	w := filepath.Join(t.TempDir(), "w")
	g.Run("", "clone", "-q", repoURL("PROJ", "r"), w)
	id := g.CommitFile(w, "new.txt", "new", "new")
	var in strings.Builder
	for i := 0; i < nrefs; i++ {
		fmt.Fprintf(&in, "create refs/heads/k/%04d %s\n", i, id)
	}
	cmd := g.Command(w, "update-ref", "--stdin")
	cmd.Stdin = strings.NewReader(in.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	dir := filepath.Join(root, "PROJ", "r.git")
	pid := sup.State().PID
	// Kill the sidecar as soon as the first pushed ref lands on disk.
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for i := 0; i < 60000; i++ {
			ents, _ := os.ReadDir(filepath.Join(dir, "refs", "heads", "k"))
			for _, e := range ents {
				if !strings.HasSuffix(e.Name(), ".lock") {
					syscall.Kill(pid, syscall.SIGKILL)
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	_, err := g.TryRun(w, "push", "-q", repoURL("PROJ", "r"), "refs/heads/k/*:refs/heads/k/*")
	<-killed
	if err == nil {
		t.Log("the push completed before the kill took effect")
	}
	waitFor(t, "the sidecar to come back", func() bool { st := sup.State(); return st.Phase == mesh.PhaseReady && st.PID != pid })
	// git processes die with their sidecar: none is left in the repository.
	waitFor(t, "the killed sidecar's git processes to go", func() bool { return len(processesIn(dir)) == 0 })
	refs, err := c.Refs(ctx, "PROJ", "r")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, v := range refs {
		if strings.HasPrefix(name, "refs/heads/k/") {
			n++
			if v != id {
				t.Errorf("%s = %s: neither old nor new", name, v)
			}
		}
	}
	t.Logf("%d of %d refs were written before the sidecar died", n, nrefs)
	g.Fsck(dir)
	g.Run(w, "push", "-q", repoURL("PROJ", "r"), "refs/heads/k/*:refs/heads/k/*")
	refs, _ = c.Refs(ctx, "PROJ", "r")
	for i := 0; i < nrefs; i++ {
		if name := fmt.Sprintf("refs/heads/k/%04d", i); refs[name] != id {
			t.Fatalf("after the second push %s = %q", name, refs[name])
		}
	}
}

// TestSubscriptionSurvivesRestart: a Client subscription reconnects after the
// sidecar is killed, reports a gap, and carries on.
func TestSubscriptionSurvivesRestart(t *testing.T) {
	t.Parallel()
	sup, _ := startSupervisor(t, freePort(t))
	c := sup.Client()
	ctx := ctxT(t)
	events, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, "PROJ", "one"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Type != mesh.EventCreated || ev.Slug != "one" {
		t.Fatalf("event %+v", ev)
	}
	pid := sup.State().PID
	syscall.Kill(pid, syscall.SIGKILL)
	if ev := nextEvent(t, events); ev.Type != mesh.EventGap {
		t.Fatalf("after the restart: %+v, want a gap", ev)
	}
	if err := c.Create(ctx, "PROJ", "two"); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events); ev.Type != mesh.EventCreated || ev.Slug != "two" {
		t.Fatalf("event %+v", ev)
	}
}

// TestSupervisorRestartsUnresponsiveSidecar stops the child with SIGSTOP: the
// health checks fail and the supervisor replaces it.
func TestSupervisorRestartsUnresponsiveSidecar(t *testing.T) {
	t.Parallel()
	sup, _ := startSupervisor(t, freePort(t))
	pid := sup.State().PID
	syscall.Kill(pid, syscall.SIGSTOP)
	waitFor(t, "a new sidecar", func() bool { st := sup.State(); return st.Phase == mesh.PhaseReady && st.PID != pid })
	if st := sup.State(); st.Restarts != 1 || !strings.Contains(st.LastExit, "unresponsive") {
		t.Fatalf("state %+v", st)
	}
	if alive(pid) {
		t.Errorf("the stopped sidecar %d is still there", pid)
	}
	if _, err := sup.Client().List(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// TestSupervisorShutdown: Shutdown lets a running git service finish, and leaves no
// process behind; with a deadline that passes, the service is killed.
func TestSupervisorShutdown(t *testing.T) {
	t.Parallel()
	for _, finish := range []bool{true, false} {
		t.Run(fmt.Sprintf("finish=%v", finish), func(t *testing.T) {
			sup, root := startSupervisor(t, freePort(t))
			c := sup.Client()
			ctx := ctxT(t)
			if err := c.Create(ctx, "PROJ", "r"); err != nil {
				t.Fatal(err)
			}
			pid := sup.State().PID
			dir := filepath.Join(root, "PROJ", "r.git")
			stdinR, stdinW := io.Pipe()
			outR, outW := io.Pipe()
			served := make(chan error, 1)
			go func() {
				served <- c.ServeGit(ctx, request(gitfleet.UploadPack, "PROJ/r", nil), stdinR, outW, io.Discard)
				outW.Close()
			}()
			br := bufio.NewReader(outR)
			if _, err := io.ReadFull(br, make([]byte, 4)); err != nil { // the advertisement
				t.Fatal(err)
			}
			go io.Copy(io.Discard, br)
			deadline := 30 * time.Second
			if !finish {
				deadline = 500 * time.Millisecond
			}
			sctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			shut := make(chan error, 1)
			go func() { shut <- sup.Shutdown(sctx) }()
			if finish {
				// Once the sidecar has its SIGTERM it stops accepting connections.
				waitFor(t, "the sidecar to stop accepting", func() bool {
					_, err := c.List(ctx)
					return errors.Is(err, mesh.ErrUnavailable)
				})
				io.WriteString(stdinW, "0000") // the client wants nothing: upload-pack ends well
				stdinW.Close()
				if err := <-served; err != nil {
					t.Fatalf("the running service failed during Shutdown: %v", err)
				}
				if err := <-shut; err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			} else {
				if err := <-shut; !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Shutdown = %v, want the deadline", err)
				}
				if err := <-served; err == nil {
					t.Fatal("the service outlived the killed sidecar")
				}
				stdinW.Close()
			}
			if alive(pid) {
				t.Errorf("sidecar %d still running after Shutdown", pid)
			}
			// Its upload-pack went with it (Pdeathsig when killed).
			waitFor(t, "git processes to end", func() bool { return len(processesIn(dir)) == 0 })
			if st := sup.State(); st.Phase != mesh.PhaseStopped {
				t.Errorf("state %+v", st)
			}
		})
	}
}

// TestSidecarDiesWithParent kills a supervising process with SIGKILL (no chance to
// clean up): its sidecar child must die too (Pdeathsig).
func TestSidecarDiesWithParent(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=parent", "MESH_SIDECAR_ROOT="+filepath.Join(t.TempDir(), "r"),
		"MESH_SIDECAR_PORT="+strconv.Itoa(freePort(t)), "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || !alive(child) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child pid %q: %v", line, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	waitFor(t, "the orphaned sidecar to die", func() bool { return !alive(child) })
}

// TestSupervisorFollowsPortChange: the sidecar dies and, while it is away, another
// socket takes its port; the new sidecar falls back to another port and the Client
// follows it.
func TestSupervisorFollowsPortChange(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "repositories")
	port := freePort(t)
	sup := &mesh.Supervisor{
		Command:        sidecarCommand(t, root, port),
		Logger:         testLogger(t),
		HealthInterval: 200 * time.Millisecond,
		MinBackoff:     2 * time.Second, // time enough to take the port before the restart
	}
	var err error
	ctx := ctxT(t)
	if err := sup.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer sup.Shutdown(ctx)
	c := sup.Client()
	if err := c.Create(ctx, "PROJ", "r"); err != nil {
		t.Fatal(err)
	}
	first := sup.State()
	syscall.Kill(first.PID, syscall.SIGKILL)
	var squatter net.Listener
	waitFor(t, "the old port to be free", func() bool {
		squatter, err = net.Listen("tcp", first.Addr)
		return err == nil
	})
	defer squatter.Close()
	waitFor(t, "a new sidecar", func() bool { st := sup.State(); return st.Phase == mesh.PhaseReady && st.PID != first.PID })
	st := sup.State()
	if st.Addr == first.Addr || c.Addr() != st.Addr {
		t.Fatalf("sidecar moved from %s to %s; client at %s", first.Addr, st.Addr, c.Addr())
	}
	if ok, err := c.Exists(ctx, "PROJ", "r"); err != nil || !ok {
		t.Fatalf("Exists through the moved sidecar: %v, %v", ok, err)
	}
}

// TestLifecycleIdiom checks the net/http shape of Server and Supervisor: Close is
// safe twice, and Serve and Start return ErrServerClosed after it; a Supervisor
// without a Command refuses to start.
func TestLifecycleIdiom(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t)
	var zero mesh.Supervisor
	if err := zero.Start(ctx); err == nil || errors.Is(err, mesh.ErrServerClosed) {
		t.Fatalf("Start without a Command: %v, want an error saying so", err)
	}
	zero.Close()

	sup := &mesh.Supervisor{Command: func() *exec.Cmd { return exec.Command("false") }}
	if err := sup.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sup.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := sup.Start(ctx); !errors.Is(err, mesh.ErrServerClosed) {
		t.Fatalf("Start after Close: %v, want ErrServerClosed", err)
	}
	if err := sup.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after Close: %v", err)
	}
	if st := sup.State(); st.Phase != mesh.PhaseStopped {
		t.Fatalf("state after Close: %+v", st)
	}

	key, err := mesh.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := &mesh.Server{Store: openStore(t), Key: key}
	l, err := mesh.Listen(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, mesh.ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
	srv.Close()
	srv.Close()
	l2, err := mesh.Listen(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(l2); !errors.Is(err, mesh.ErrServerClosed) {
		t.Fatalf("Serve after Close: %v, want ErrServerClosed", err)
	}
}
