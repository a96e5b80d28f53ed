//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/portfwd"
	"github.com/gitfleet/gitfleet/portfwd/portfwdtest"
)

// farmConfig is deploy/mirror-farm.cfg (the file the README points farm
// operators to) with the nodes' ports, the test CA and the front port put in.
func farmConfig(t *testing.T, front int, ca string, nodes []*testutil.ServerNode) string {
	t.Helper()
	b, err := os.ReadFile("deploy/mirror-farm.cfg")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "127.0.0.1:2222", fmt.Sprintf("127.0.0.1:%d", front))
	s = strings.ReplaceAll(s, "/etc/gitfleet/ca.pem", ca)
	for i, old := range [][2]string{{"7999", "8990"}, {"7998", "8991"}, {"7997", "8992"}} {
		s = strings.ReplaceAll(s, "127.0.0.1:"+old[0]+" check port "+old[1], fmt.Sprintf("127.0.0.1:%d check port %d", nodes[i].SSHPort, nodes[i].HTTPPort))
	}
	p := filepath.Join(t.TempDir(), "mirror-farm.cfg")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMirrorFarm runs a farm as the README describes it, from the built
// binaries: a primary, three mirror nodes (the first approved, the others
// joined with the farm's token) and portfwd with deploy/mirror-farm.cfg (which
// haproxy -c accepts too). 64 concurrent clones through portfwd while one node
// is killed with SIGKILL: every clone that fails succeeds on one retry, and
// portfwd takes the dead node out. 100 rounds of "push to the primary, then at
// once clone from the farm": none stale. A node started after portfwd takes
// traffic only once its initial sync is done; the killed node, started again
// after pushes it missed, reports ready only with the primary's refs.
func TestMirrorFarm(t *testing.T) {
	testutil.Require(t, "haproxy")
	ca := testutil.NewCA(t, "gitfleet test CA")
	primary := startNode(t, testutil.ServerOptions{CA: ca})
	g, key := setupUserRepo(t, primary)
	work := t.TempDir()
	w := filepath.Join(work, "w")
	g.Run(work, "clone", "-q", primary.SSHURL("PROJ", "repo"), "w")
	g.CommitFile(w, "a.txt", "a\n", "first")
	g.Run(w, "push", "-q", "origin", "HEAD:main")

	startMirrorOn := func(ports *testutil.ServerNode, env ...string) *testutil.ServerNode {
		home := t.TempDir()
		os.MkdirAll(filepath.Join(home, "shared"), 0o755)
		testutil.LayoutHome(home).WriteProperties(t, readmeMirrorProperties(t, primary, ports.HTTPPort))
		return startNode(t, testutil.ServerOptions{CA: ca, Home: home, Ports: ports, Env: env})
	}
	newPorts := func() *testutil.ServerNode {
		return &testutil.ServerNode{HTTPPort: testutil.FreePort(t), SSHPort: testutil.FreePort(t), MeshPort: testutil.FreePort(t)}
	}
	startMirror := func(env ...string) *testutil.ServerNode { return startMirrorOn(newPorts(), env...) }
	ready := func(n *testutil.ServerNode) bool { code, _ := getReady(t, n); return code == 200 }
	n1 := startMirror()
	waitFor(t, func() bool { return mirrorStatus(t, n1).State == "PENDING" })
	var list struct{ Values []struct{ ID string } }
	json.Unmarshal(primary.MustAPI(200, "GET", "/rest/mirroring/1.0/mirrorServers", nil), &list)
	if len(list.Values) != 1 {
		t.Fatalf("mirror requests: %+v", list)
	}
	farm := list.Values[0].ID
	primary.MustAPI(200, "POST", "/rest/mirroring/1.0/mirrorServers/"+farm+"/accept",
		map[string]any{"mirroringMode": "SELECTED_PROJECTS", "projects": []string{"PROJ"}})
	var tok struct{ Token string }
	json.Unmarshal(primary.MustAPI(200, "POST", "/rest/mirroring/1.0/mirrorServers/"+farm+"/join-token", nil), &tok)
	n2 := startMirror("PLUGIN_MIRRORING_FARM_JOIN_TOKEN=" + tok.Token)
	for _, n := range []*testutil.ServerNode{n1, n2} {
		waitFor(t, func() bool { return ready(n) })
	}
	// The third node starts late, once portfwd checks its ports.
	n3Ports := newPorts()
	nodes := []*testutil.ServerNode{n1, n2, n3Ports}

	front := testutil.FreePort(t)
	cfgFile := farmConfig(t, front, ca.File, nodes)
	if out, err := exec.Command("haproxy", "-c", "-f", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	text, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	fw := portfwdtest.Start(t, string(text), cfgFile)
	server := func(name string) portfwd.ServerStats {
		for _, b := range fw.Stats().Backends {
			for _, s := range b.Servers {
				if s.Name == name {
					return s
				}
			}
		}
		return portfwd.ServerStats{}
	}
	up := func(name string) bool { return server(name).Up }
	waitFor(t, func() bool {
		s3 := server("node3")
		return up("node1") && up("node2") && s3.Checked && !s3.Up
	})
	n3 := startMirrorOn(n3Ports, "PLUGIN_MIRRORING_FARM_JOIN_TOKEN="+tok.Token)
	nodes[2] = n3
	// It takes traffic only once its initial sync is done.
	waitFor(t, func() bool {
		if !up("node3") {
			return false
		}
		if st := mirrorStatus(t, n3); st.Initial["done"] != true {
			t.Fatalf("portfwd sends to node3 before its initial sync is done: %+v", st.Initial)
		}
		return true
	})

	// Every node's host keys, for the one address.
	var khLines []string
	for _, n := range nodes {
		b, _ := os.ReadFile(n.KnownHosts(t, front))
		khLines = append(khLines, strings.TrimSpace(string(b)))
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte(strings.Join(khLines, "\n")+"\n"), 0o600)
	cg := testutil.NewGit(t)
	cg.SetSSH(key, kh)
	url := fmt.Sprintf("ssh://git@127.0.0.1:%d/proj/repo.git", front)

	// The storm, with node2 killed in the middle.
	const clones = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed, retriedOK := 0, 0
	sem := make(chan struct{}, 16)
	for i := range clones {
		if i == clones/4 {
			n2.Kill()
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dir := filepath.Join(work, fmt.Sprintf("s%d", i))
			if _, err := cg.TryRun("", "clone", "-q", "--bare", url, dir); err == nil {
				return
			}
			os.RemoveAll(dir)
			mu.Lock()
			failed++
			mu.Unlock()
			if _, err := cg.TryRun("", "clone", "-q", "--bare", url, dir); err != nil {
				t.Errorf("clone %d failed twice: %v", i, err)
				return
			}
			mu.Lock()
			retriedOK++
			mu.Unlock()
		}()
	}
	wg.Wait()
	killed := time.Now()
	waitFor(t, func() bool { return !up("node2") })
	t.Logf("storm of %d clones: %d failed once (all succeeded on retry: %d); portfwd had node2 down %v after the storm", clones, failed, retriedOK, time.Since(killed).Round(time.Millisecond))

	// Read your writes through the farm.
	for i := range 100 {
		id := g.CommitFile(w, "round.txt", strings.Repeat("r", i+1), "round")
		g.Run(w, "push", "-q", "origin", "HEAD:main")
		c := filepath.Join(work, "ryw")
		cg.Run("", "clone", "-q", "--bare", url, c)
		if got := strings.TrimSpace(cg.Run(c, "rev-parse", "refs/heads/main")); got != id {
			t.Fatalf("round %d: the farm served main %s, the primary has %s", i, got, id)
		}
		os.RemoveAll(c)
	}

	// node2 missed those pushes: started again, it is ready only with them.
	want := strings.TrimSpace(g.Run(w, "rev-parse", "HEAD"))
	n2.Start()
	n2.WaitRunning()
	waitFor(t, func() bool { return ready(n2) })
	if got := strings.TrimSpace(testutil.NewGit(t).Run(n2.RepoDir("PROJ", "repo"), "rev-parse", "refs/heads/main")); got != want {
		t.Fatalf("node2 ready with main %s, the primary has %s", got, want)
	}
	waitFor(t, func() bool { return up("node2") })
}
