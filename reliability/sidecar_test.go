//go:build linux

package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// meshState is the reply of GET /rest/api/1.0/admin/mesh.
type meshState struct {
	State    string `json:"state"`
	PID      int    `json:"pid"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"lastExit"`
}

func readMeshState(t *testing.T, n *testutil.ServerNode) meshState {
	t.Helper()
	var st meshState
	if err := json.Unmarshal(n.MustAPI(200, "GET", "/rest/api/1.0/admin/mesh", nil), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// op is one client operation and when it ran.
type op struct {
	what       string
	start, end time.Time
	err        error
}

// TestSidecarKilledUnderLoad kills the storage sidecar (kill -9 of the child
// the server supervises) while clients clone and push. The server keeps
// running and starts a new sidecar; an operation fails only if it was running
// while no sidecar served, and fails promptly; every operation that starts
// once the new sidecar is ready succeeds; the repositories pass fsck and every
// pushed branch is a commit its client made.
func TestSidecarKilledUnderLoad(t *testing.T) {
	node := testutil.StartServer(t, testutil.ServerOptions{Bin: serverBin})
	key := node.AddUser(t, "load", "LOAD")
	g := testutil.NewGit(t)
	g.SetSSH(key, node.KnownHosts(t, 0))
	for slug, src := range map[string]string{"small": testutil.CachedRepo(t, testutil.SmallRepo), "mid": testutil.CachedRepo(t, soakRepo)} {
		node.CreateRepo(t, "LOAD", slug)
		g.Run(src, "push", "-q", node.SSHURL("LOAD", slug), "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
	}
	before := readMeshState(t, node)
	if before.State != "READY" || before.PID <= 0 {
		t.Fatalf("mesh state before the kill: %+v", before)
	}

	const clients = 8
	stop := make(chan struct{})
	var mu sync.Mutex
	var ops []op
	record := func(o op) {
		mu.Lock()
		defer mu.Unlock()
		ops = append(ops, o)
	}
	var wg sync.WaitGroup
	work := t.TempDir()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loadClient(g, node, i, filepath.Join(work, strconv.Itoa(i)), stop, record)
		}()
	}
	time.Sleep(3 * time.Second)
	killedAt := time.Now()
	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the sidecar %d: %v", before.PID, err)
	}
	var after meshState
	waitFor(t, time.Minute, "a new sidecar", func() bool {
		after = readMeshState(t, node)
		return after.State == "READY" && after.PID != before.PID
	})
	readyAt := time.Now()
	t.Logf("sidecar %d killed; %d ready %v later (restarts %d, last exit %q)", before.PID, after.PID,
		readyAt.Sub(killedAt).Round(time.Millisecond), after.Restarts, after.LastExit)
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()

	if node.Exited() {
		t.Fatalf("the server exited:\n%s", node.Stderr)
	}
	if after.Restarts < 1 {
		t.Errorf("restarts = %d after a kill", after.Restarts)
	}
	var failed, afterReady int
	for _, o := range ops {
		if o.start.After(readyAt) {
			afterReady++
		}
		if o.err == nil {
			continue
		}
		failed++
		switch {
		case o.start.After(readyAt):
			t.Errorf("%s started after the new sidecar was ready and failed: %v", o.what, o.err)
		case o.end.Before(killedAt):
			t.Errorf("%s failed before the sidecar was killed: %v", o.what, o.err)
		case o.end.Sub(o.start) > time.Minute:
			t.Errorf("%s hung for %v before failing", o.what, o.end.Sub(o.start))
		}
	}
	t.Logf("%d operations, %d failed while the sidecar was down, %d started after it was back", len(ops), failed, afterReady)
	if afterReady == 0 {
		t.Error("no operation ran after the new sidecar was ready")
	}
	for _, slug := range []string{"small", "mid"} {
		fsck(t, node.RepoDir("LOAD", slug))
	}
	clientBranches(t, g, node.RepoDir("LOAD", "small"), "load-", work)
}

// loadClient alternates clones of both repositories and pushes of a new commit
// to its own branch until stop is closed.
func loadClient(g *testutil.Git, node *testutil.ServerNode, id int, dir string, stop <-chan struct{}, record func(op)) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		record(op{what: "mkdir", err: err})
		return
	}
	wt := filepath.Join(dir, "wt")
	haveWT := false
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		o := op{start: time.Now()}
		switch {
		case !haveWT:
			o.what = fmt.Sprintf("client %d: clone of the work tree", id)
			_, o.err = g.TryRun(dir, "clone", "-q", node.SSHURL("LOAD", "small"), "wt")
			haveWT = o.err == nil
			if o.err != nil {
				os.RemoveAll(wt)
			}
		case n%3 == 0:
			o.what = fmt.Sprintf("client %d: push %d", id, n)
			if err := os.WriteFile(filepath.Join(wt, "load.txt"), []byte(fmt.Sprintf("%d %d\n", id, n)), 0o644); err != nil {
				o.err = err
				break
			}
			if _, o.err = g.TryRun(wt, "add", "load.txt"); o.err != nil {
				break
			}
			if _, o.err = g.TryRun(wt, "commit", "-q", "-m", o.what); o.err != nil {
				break
			}
			o.start = time.Now() // the push itself
			_, o.err = g.TryRun(wt, "push", "-q", "origin", fmt.Sprintf("HEAD:refs/heads/load-%d", id))
		default:
			slug := []string{"small", "mid"}[n%2]
			o.what = fmt.Sprintf("client %d: clone %d of %s", id, n, slug)
			target := filepath.Join(dir, fmt.Sprintf("c%d.git", n))
			_, o.err = g.TryRun(dir, "clone", "-q", "--bare", node.SSHURL("LOAD", slug), target)
			if o.err == nil {
				if out, err := g.TryRun(target, "fsck", "--no-progress"); err != nil {
					o.err = fmt.Errorf("fsck of a successful clone: %v\n%s", err, out)
				}
			}
			os.RemoveAll(target)
		}
		o.end = time.Now()
		record(o)
	}
}
