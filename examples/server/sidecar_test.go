//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestSidecarPortTakenAndKilled holds the sidecar's configured port with another
// socket: the node still starts, the log names the fallback port, and clones work.
// Then the sidecar is killed with SIGKILL: /rest/api/1.0/admin/mesh shows it
// coming back with a new pid, and clones work again.
func TestSidecarPortTakenAndKilled(t *testing.T) {
	hold := testutil.Listen(t) // the port another process has
	heldPort := hold.Addr().(*net.TCPAddr).Port
	n := startNode(t, testutil.ServerOptions{})
	n.Stop(syscall.SIGTERM) // restart it with the held port configured
	n = startNode(t, testutil.ServerOptions{Home: n.Home, Ports: &testutil.ServerNode{HTTPPort: n.HTTPPort, SSHPort: n.SSHPort, MeshPort: heldPort}})

	var st meshStateJSON
	json.Unmarshal(n.MustAPI(200, "GET", "/rest/api/1.0/admin/mesh", nil), &st)
	if st.State != "READY" || st.PID == 0 || st.Address == fmt.Sprintf("127.0.0.1:%d", heldPort) || !strings.HasPrefix(st.Address, "127.0.0.1:") {
		t.Fatalf("mesh state %+v with port %d held", st, heldPort)
	}
	_, fallback, _ := strings.Cut(st.Address, ":")
	logs := n.Stderr.String()
	if !strings.Contains(logs, fmt.Sprint(heldPort)) || !strings.Contains(logs, fallback) {
		t.Fatalf("the log does not name the configured port %d and the fallback %s:\n%s", heldPort, fallback, logs)
	}
	g, _ := setupUserRepo(t, n)
	work := t.TempDir()
	src := filepath.Join(t.TempDir(), "src.git")
	testutil.GenerateRepo(t, src, testutil.SmallRepo)
	g.Run(src, "push", "-q", n.SSHURL("PROJ", "repo"), "refs/heads/*:refs/heads/*")
	g.Run(work, "clone", "-q", n.SSHURL("PROJ", "repo"), "one")

	// kill -9 of the sidecar child.
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var sawRestart bool
	var after meshStateJSON
	waitFor(t, func() bool {
		json.Unmarshal(n.MustAPI(200, "GET", "/rest/api/1.0/admin/mesh", nil), &after)
		if after.State != "READY" {
			sawRestart = true
		}
		return after.State == "READY" && after.PID != st.PID
	})
	if after.Restarts < 1 || after.LastExit == "" {
		t.Fatalf("after the kill: %+v", after)
	}
	t.Logf("saw a non-ready state: %v; now %+v", sawRestart, after)
	g.Run(work, "clone", "-q", n.SSHURL("PROJ", "repo"), "two")
	g.Fsck(filepath.Join(work, "two"))
	if a, b := g.Refs(filepath.Join(work, "one")), g.Refs(filepath.Join(work, "two")); a["refs/heads/main"] != b["refs/heads/main"] {
		t.Fatalf("clones differ: %v %v", a, b)
	}
	// Shutdown leaves no sidecar behind.
	if err := n.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if err := syscall.Kill(after.PID, 0); err == nil {
		t.Fatalf("sidecar %d still running after the server stopped", after.PID)
	}
}
