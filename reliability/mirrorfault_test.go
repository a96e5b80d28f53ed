//go:build linux

package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/bench"
	"github.com/gitfleet/gitfleet/internal/testutil"
)

// startMirrorOf starts a mirror node of primary (HTTPS with ca) that syncs
// every few seconds, and returns it with its registration id once the primary
// lists it as pending.
func startMirrorOf(t *testing.T, primary *testutil.ServerNode, ca *testutil.CA, name string, extraEnv ...string) (*testutil.ServerNode, string) {
	t.Helper()
	port := testutil.FreePort(t)
	env := append([]string{
		"APPLICATION_MODE=mirror",
		"SETUP_DISPLAYNAME=" + name,
		fmt.Sprintf("SETUP_BASEURL=https://127.0.0.1:%d", port),
		"PLUGIN_MIRRORING_UPSTREAM_URL=" + primary.URL(""),
		"PLUGIN_MIRRORING_UPSTREAM_TYPE=server",
		"PLUGIN_MIRRORING_SYNCHRONIZATION_INTERVAL=5s",
	}, extraEnv...)
	m := testutil.StartServer(t, testutil.ServerOptions{Bin: serverBin, CA: ca, HTTPPort: port, Env: env})
	var id string
	waitFor(t, 60*time.Second, "mirror registration", func() bool {
		var list struct {
			Values []struct{ ID, Name, State string }
		}
		json.Unmarshal(primary.MustAPI(200, "GET", "/rest/mirroring/1.0/mirrorServers?limit=1000", nil), &list)
		for _, v := range list.Values {
			if v.Name == name && v.State == "PENDING" {
				id = v.ID
				return true
			}
		}
		return false
	})
	return m, id
}

// cwdIs reports whether process pid runs in a directory ending in suffix.
func cwdIs(pid int, suffix string) bool {
	dir, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	return err == nil && strings.HasSuffix(dir, suffix)
}

// TestPrimaryKilledDuringMirrorSync kills the primary (its whole process
// group, as a crash or an OOM kill would) while it is sending a mirror the
// 40,000-object repository during the initial sync. The mirror keeps running
// and never holds part of the repository's refs, and once the primary is back
// it converges to the primary's refs with fsck-clean repositories.
func TestPrimaryKilledDuringMirrorSync(t *testing.T) {
	ca := testutil.NewCA(t, "gitfleet reliability CA")
	primary := testutil.StartServer(t, testutil.ServerOptions{Bin: serverBin, CA: ca})
	key := primary.AddUser(t, "alice", "PROJ")
	g := testutil.NewGit(t)
	g.SetSSH(key, primary.KnownHosts(t, 0))
	sources := map[string]string{"big": testutil.CachedRepo(t, testutil.Preset40k), "app": testutil.CachedRepo(t, testutil.SmallRepo)}
	want := map[string]string{}
	for slug, src := range sources {
		primary.CreateRepo(t, "PROJ", slug)
		g.Run(src, "push", "-q", primary.SSHURL("PROJ", slug), "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
		want[slug] = refs(t, primary.RepoDir("PROJ", slug))
	}

	m, id := startMirrorOf(t, primary, ca, "fault-mirror")
	primary.MustAPI(200, "POST", "/rest/mirroring/1.0/mirrorServers/"+id+"/accept",
		map[string]any{"mirroringMode": "SELECTED_PROJECTS", "projects": []string{"PROJ"}})
	// Kill the primary as soon as it serves the big repository to the mirror.
	waitFor(t, 2*time.Minute, "the primary serving big.git to the mirror", func() bool {
		for _, pid := range bench.Descendants(primary.PID()) {
			if cwdIs(pid, "/big.git") {
				return true
			}
		}
		return false
	})
	primary.Kill()
	t.Log("primary killed while serving big.git")

	// While the primary is down the mirror runs, and each repository it has is
	// empty or whole.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for slug := range sources {
			dir := m.RepoDir("PROJ", slug)
			if _, err := os.Stat(dir); err != nil {
				continue
			}
			if got := refs(t, dir); got != "" && got != want[slug] {
				t.Fatalf("the mirror holds part of %s while the primary is down:\n%s", slug, got)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m.Exited() {
		t.Fatalf("the mirror exited when the primary died:\n%s", m.Stderr)
	}

	primary.Start()
	primary.WaitRunning()
	for slug := range sources {
		dir := m.RepoDir("PROJ", slug)
		waitFor(t, 3*time.Minute, "the mirror converging on "+slug, func() bool {
			if _, err := os.Stat(dir); err != nil {
				return false
			}
			got := refs(t, dir)
			if got != "" && got != want[slug] {
				t.Fatalf("the mirror holds part of %s:\n%s", slug, got)
			}
			return got == want[slug]
		})
		fsck(t, dir)
	}
	for _, line := range logLines(m.Stderr.String(), "ERROR") {
		t.Logf("mirror logged: %s", line)
	}
}
