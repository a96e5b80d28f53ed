//go:build bench

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/portfwd/portfwdtest"
)

// startFarm starts a farm of three mirrors of g's primary behind portfwd (an
// HTTPS readiness check of each node, as examples/server/deploy/mirror-farm.cfg
// has it): the first approved for the bench project, the others joined with
// its join token. It returns the nodes, the front port and a git environment
// trusting every node's host keys at that port.
func (e *env) startFarm(g *gitSetup) ([]*testutil.ServerNode, int, []string) {
	t := e.t
	first, id := e.startMirror(g, "bench-farm-1")
	g.node.MustAPI(200, "POST", "/rest/mirroring/1.0/mirrorServers/"+id+"/accept",
		map[string]any{"mirroringMode": "SELECTED_PROJECTS", "projects": []string{benchProject}})
	var tok struct{ Token string }
	json.Unmarshal(g.node.MustAPI(200, "POST", "/rest/mirroring/1.0/mirrorServers/"+id+"/join-token", nil), &tok)
	nodes := []*testutil.ServerNode{first}
	for i := 2; i <= 3; i++ {
		port := testutil.FreePort(t)
		nodes = append(nodes, testutil.StartServer(t, testutil.ServerOptions{Bin: e.serverBin, CA: g.ca, HTTPPort: port, Env: []string{
			"APPLICATION_MODE=mirror",
			fmt.Sprintf("SETUP_DISPLAYNAME=bench-farm-%d", i),
			fmt.Sprintf("SETUP_BASEURL=https://127.0.0.1:%d", port),
			"PLUGIN_MIRRORING_UPSTREAM_URL=" + g.node.URL(""),
			"PLUGIN_MIRRORING_UPSTREAM_TYPE=server",
			"PLUGIN_MIRRORING_FARM_JOIN_TOKEN=" + tok.Token,
		}}))
	}
	for _, n := range nodes {
		deadline := time.Now().Add(opTimeout)
		for {
			st, err := readMirrorStatus(n)
			if err == nil && st.State == "ACCEPTED" && st.Initial.Done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("farm node not synced (%+v, %v):\n%s", st, err, n.Stderr)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	front := testutil.FreePort(t)
	var b strings.Builder
	fmt.Fprintf(&b, "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n"+
		"listen farm\n    bind 127.0.0.1:%d\n    balance roundrobin\n    option httpchk GET /status/ready\n    http-check expect status 200\n", front)
	var kh []string
	for i, n := range nodes {
		fmt.Fprintf(&b, "    server node%d 127.0.0.1:%d check port %d check-ssl ca-file %s inter 1s fall 3 rise 2\n", i+1, n.SSHPort, n.HTTPPort, g.ca.File)
		data, err := os.ReadFile(n.KnownHosts(t, front))
		if err != nil {
			t.Fatal(err)
		}
		kh = append(kh, strings.TrimSpace(string(data)))
	}
	fw := portfwdtest.Start(t, b.String(), "farm.cfg")
	deadline := time.Now().Add(opTimeout)
	for {
		up := 0
		for _, bs := range fw.Stats().Backends {
			for _, s := range bs.Servers {
				if s.Up {
					up++
				}
			}
		}
		if up == len(nodes) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("portfwd has %d of %d farm nodes up", up, len(nodes))
		}
		time.Sleep(20 * time.Millisecond)
	}
	khFile := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(khFile, []byte(strings.Join(kh, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(append([]string(nil), g.plainEnv...),
		"GIT_SSH_COMMAND="+testutil.SSHCommand(g.key.Path, khFile), "GIT_SSH_VARIANT=ssh")
	return nodes, front, env
}

// benchFarm is comparison 10: a storm of 64 concurrent clones of the small
// repository from a farm of three mirrors behind portfwd against the same
// storm from one of those mirrors directly, and how long a push to the primary
// takes to reach every node of the farm.
func (e *env) benchFarm(g *gitSetup) (*Comparison, *Comparison) {
	t := e.t
	nodes, front, farmEnv := e.startFarm(g)
	single := nodes[0]
	singleEnv := append(append([]string(nil), g.plainEnv...),
		"GIT_SSH_COMMAND="+testutil.SSHCommand(g.key.Path, single.KnownHosts(t, 0)), "GIT_SSH_VARIANT=ssh")
	const clones = 64
	storm := &Comparison{
		Title: "Mirror farm: 64 concurrent clones",
		What: fmt.Sprintf("%d concurrent `git clone --bare` of the small repository (all started at once, each a new SSH connection), "+
			"from a farm of three mirror nodes (examples/server) behind portfwd with HTTPS readiness checks, against the same "+
			"storm from one of those nodes directly. All nodes share this machine's cores. Figure: wall time of the storm; "+
			"failures are clones that failed.", clones),
		Unit: "s", Reference: "single mirror",
	}
	stormRun := func(env []string, url string) func() (float64, int, error) {
		return func() (float64, int, error) {
			dir, err := os.MkdirTemp("", "bench-farm")
			if err != nil {
				return 0, 0, err
			}
			defer os.RemoveAll(dir)
			var wg sync.WaitGroup
			var mu sync.Mutex
			failed := 0
			secs, _ := timed(func() error {
				for i := range clones {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := runGit(env, dir, "clone", "-q", "--bare", url, filepath.Join(dir, fmt.Sprintf("c%d.git", i))); err != nil {
							mu.Lock()
							if failed == 0 {
								t.Logf("%s: a clone failed: %v", url, err)
							}
							failed++
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				return nil
			})
			return secs, failed, nil
		}
	}
	farmURL := fmt.Sprintf("ssh://git@127.0.0.1:%d/%s/small.git", front, strings.ToLower(benchProject))
	e.interleave(storm, e.rounds, "", contender{name: "farm of 3 (portfwd)", run: stormRun(farmEnv, farmURL)},
		contender{name: "single mirror", pid: single.PID, run: stormRun(singleEnv, single.SSHURL(benchProject, "small"))})

	// Push-to-farm visibility.
	pushes := 40
	if e.quick {
		pushes = 10
	}
	vis := &Comparison{
		Title: "Push-to-farm visibility",
		What: fmt.Sprintf("%d pushes of one commit each to the small repository on the primary; for each, the time from `git push` "+
			"returning until every one of the farm's three nodes has the new ref in its own repository (read with `git rev-parse` "+
			"every 5 ms). Reads through the farm never see an older state (each node checks with the primary first), so this is "+
			"how long until reads need no wait. Figure: milliseconds per push.", pushes),
		Unit: "ms",
	}
	work := t.TempDir()
	wt := filepath.Join(work, "w")
	if err := runGit(g.gfEnv, work, "clone", "-q", g.urls["small"]["gitfleet"], wt); err != nil {
		t.Fatal(err)
	}
	p := vis.Peer("farm of 3")
	for i := range pushes {
		want := pushNext(t, g.gfEnv, wt, "farm", i)
		t0 := time.Now()
		failed := 0
		for _, n := range nodes {
			dir := n.RepoDir(benchProject, "small")
			for {
				out, _ := exec.Command("git", "-C", dir, "rev-parse", "--verify", "-q", "refs/heads/farm").Output()
				if strings.TrimSpace(string(out)) == want {
					break
				}
				if time.Since(t0) > time.Minute {
					failed = 1
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		p.Runs = append(p.Runs, Run{Value: float64(time.Since(t0).Microseconds()) / 1e3, Failed: failed})
	}
	v := p.Values()
	vis.Notes = append(vis.Notes, fmt.Sprintf("Percentiles by nearest rank over the %d pushes: p50 %s ms, p99 %s ms.",
		len(v), num(Percentile(v, 50)), num(Percentile(v, 99))))
	return storm, vis
}
