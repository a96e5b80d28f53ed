//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/node"
	"github.com/gitfleet/gitfleet/portfwd"
	"github.com/gitfleet/gitfleet/portfwd/portfwdtest"
)

// getReady reads a node's readiness endpoint: the status code and the body.
func getReady(t testing.TB, n *testutil.ServerNode) (int, string) {
	t.Helper()
	resp, err := n.Client.Get(n.URL(node.PathReady))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// startReadyPair starts a primary with PROJ/repo holding one commit and a
// mirror of it, with extra environment for the mirror, and returns both once
// the mirror is pending, with the key of a user who may read PROJ; accept
// approves the mirror.
func startReadyPair(t *testing.T, ca *testutil.CA, mirrorEnv ...string) (primary, m *testutil.ServerNode, key *testutil.Key, accept func()) {
	t.Helper()
	primary = startNode(t, testutil.ServerOptions{CA: ca})
	g, key := setupUserRepo(t, primary)
	work := t.TempDir()
	g.Run(work, "clone", "-q", primary.SSHURL("PROJ", "repo"), "w")
	wt := filepath.Join(work, "w")
	g.CommitFile(wt, "a.txt", "a\n", "first")
	g.Run(wt, "push", "-q", "origin", "HEAD:main")

	mport := testutil.FreePort(t)
	mhome := t.TempDir()
	os.MkdirAll(filepath.Join(mhome, "shared"), 0o755)
	testutil.LayoutHome(mhome).WriteProperties(t, readmeMirrorProperties(t, primary, mport))
	m = startNode(t, testutil.ServerOptions{CA: ca, Home: mhome, HTTPPort: mport, Env: mirrorEnv})
	waitFor(t, func() bool { return mirrorStatus(t, m).State == "PENDING" })
	accept = func() {
		var list struct{ Values []struct{ ID string } }
		json.Unmarshal(primary.MustAPI(200, "GET", "/rest/mirroring/1.0/mirrorServers", nil), &list)
		if len(list.Values) != 1 {
			t.Fatalf("mirror requests: %+v", list)
		}
		primary.MustAPI(200, "POST", "/rest/mirroring/1.0/mirrorServers/"+list.Values[0].ID+"/accept",
			map[string]any{"mirroringMode": "SELECTED_PROJECTS", "projects": []string{"PROJ"}})
	}
	return primary, m, key, accept
}

// TestReadiness runs a primary and a mirror from the built binary: the primary
// is ready; the mirror answers 503 while pending, 200 once accepted and
// synced, and 503 naming the outage once the primary has been gone for longer
// than plugin.mirroring.readiness.upstream-outage (2 s here); liveness stays
// 200 throughout.
func TestReadiness(t *testing.T) {
	ca := testutil.NewCA(t, "gitfleet test CA")
	primary, m, _, accept := startReadyPair(t, ca, "PLUGIN_MIRRORING_READINESS_UPSTREAM_OUTAGE=2s")
	if code, body := getReady(t, primary); code != 200 || body != "ready\n" {
		t.Fatalf("primary %s: %d %q", node.PathReady, code, body)
	}
	if code, body := getReady(t, m); code != 503 || !strings.Contains(body, "not ready: mirror is PENDING") {
		t.Fatalf("pending mirror %s: %d %q", node.PathReady, code, body)
	}
	accept()
	waitFor(t, func() bool { code, _ := getReady(t, m); return code == 200 })
	if st := mirrorStatus(t, m); !st.Initial["done"].(bool) || len(st.Repos) != 1 {
		t.Fatalf("ready before the initial sync: %+v", st)
	}
	primary.Kill()
	waitFor(t, func() bool {
		code, body := getReady(t, m)
		return code == 503 && strings.Contains(body, "upstream unreachable for") && strings.Contains(body, "(limit 2s)")
	})
	resp, err := m.Client.Get(m.URL(node.PathLive))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s during the outage: %v", node.PathLive, err)
	}
	resp.Body.Close()
}

// TestMirrorBehindPortfwdHealthCheck puts portfwd in front of a mirror's SSH
// port with an HTTPS health check of the mirror's readiness endpoint (option
// httpchk, check port, check-ssl with the test CA): portfwd takes the mirror
// down while it is pending, sends clones to it once it is accepted and
// synced, and takes it down again once the primary has been gone for longer
// than the mirror's outage limit.
func TestMirrorBehindPortfwdHealthCheck(t *testing.T) {
	ca := testutil.NewCA(t, "gitfleet test CA")
	primary, m, key, accept := startReadyPair(t, ca, "PLUGIN_MIRRORING_READINESS_UPSTREAM_OUTAGE=2s")
	front := testutil.FreePort(t)
	text := fmt.Sprintf(`defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen git
    bind 127.0.0.1:%d
    option httpchk GET %s
    http-check expect status 200
    server m1 127.0.0.1:%d check port %d check-ssl ca-file %s inter 100ms fall 2 rise 2
`, front, node.PathReady, m.SSHPort, m.HTTPPort, ca.File)
	fw := portfwdtest.Start(t, text, "farm.cfg")
	stats := func() portfwd.ServerStats {
		for _, b := range fw.Stats().Backends {
			for _, s := range b.Servers {
				return s
			}
		}
		return portfwd.ServerStats{}
	}
	up := func() bool { return stats().Up }
	down := func() bool { s := stats(); return s.Checked && !s.Up }
	waitFor(t, down) // pending: 503

	mg := testutil.NewGit(t)
	mg.SetSSH(key, m.KnownHosts(t, front))
	url := fmt.Sprintf("ssh://git@127.0.0.1:%d/proj/repo.git", front)
	work := t.TempDir()
	if _, err := mg.TryRun(work, "ls-remote", url); err == nil {
		t.Fatal("portfwd served a clone from a mirror that is not ready")
	}
	accept()
	waitFor(t, up) // a server that is down comes up after rise passing checks: the mirror answers 200
	if out, err := mg.TryRun(work, "clone", "-q", url, "c"); err != nil {
		t.Fatalf("clone through portfwd: %v\n%s\nmirror:\n%s", err, out, m.Stderr)
	}
	if got := strings.TrimSpace(mg.Run(filepath.Join(work, "c"), "log", "--format=%s", "-1")); got != "first" {
		t.Fatalf("clone through portfwd: HEAD %q", got)
	}

	primary.Kill()
	waitFor(t, down)
	if _, err := mg.TryRun(work, "ls-remote", url); err == nil {
		t.Fatal("portfwd served a clone from a mirror cut off from its upstream")
	}
}
