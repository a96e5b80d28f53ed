//go:build bench

package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// mirrorStatus is the part of a mirror's /rest/mirroring/1.0/status the
// benchmark reads.
type mirrorStatus struct {
	State   string `json:"state"`
	Initial struct {
		Done       bool `json:"done"`
		ReposTotal int  `json:"repositoriesTotal"`
		ReposDone  int  `json:"repositoriesDone"`
	} `json:"initialSync"`
}

func readMirrorStatus(m *testutil.ServerNode) (mirrorStatus, error) {
	var st mirrorStatus
	resp, err := m.Client.Get(m.URL("/rest/mirroring/1.0/status"))
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("mirror status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// startMirror starts a fresh mirror of g's primary and waits until the
// primary lists its registration; it returns the mirror and its id.
func (e *env) startMirror(g *gitSetup, name string) (*testutil.ServerNode, string) {
	t := e.t
	t.Helper()
	port := testutil.FreePort(t)
	m := testutil.StartServer(t, testutil.ServerOptions{Bin: e.serverBin, CA: g.ca, HTTPPort: port, Env: []string{
		"APPLICATION_MODE=mirror",
		"SETUP_DISPLAYNAME=" + name,
		fmt.Sprintf("SETUP_BASEURL=https://127.0.0.1:%d", port),
		"PLUGIN_MIRRORING_UPSTREAM_URL=" + g.node.URL(""),
		"PLUGIN_MIRRORING_UPSTREAM_TYPE=server",
	}})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var list struct {
			Values []struct{ ID, Name, State string }
		}
		json.Unmarshal(g.node.MustAPI(200, "GET", "/rest/mirroring/1.0/mirrorServers?limit=1000", nil), &list)
		for _, v := range list.Values {
			if v.Name == name && v.State == "PENDING" {
				return m, v.ID
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("mirror %s never registered:\n%s", name, m.Stderr)
	return nil, ""
}

// refsOf lists the refs of a repository directory.
func refsOf(dir string) (string, error) {
	out, err := exec.Command("git", "-C", dir, "for-each-ref", "--format=%(objectname) %(refname)").CombinedOutput()
	return string(out), err
}

// pushNext commits a change to branch's file in the work tree wt and pushes
// it to origin's branch, returning the commit's id.
func pushNext(t testing.TB, env []string, wt, branch string, i int) string {
	t.Helper()
	file := branch + ".txt"
	if err := os.WriteFile(filepath.Join(wt, file), []byte(fmt.Sprintf("push %d\n", i)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runGit(env, wt, "add", file); err != nil {
		t.Fatal(err)
	}
	if err := runGit(env, wt, "commit", "-q", "-m", fmt.Sprintf("%s %d", branch, i)); err != nil {
		t.Fatal(err)
	}
	head, err := exec.Command("git", "-C", wt, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := runGit(env, wt, "push", "-q", "origin", "HEAD:refs/heads/"+branch); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(head))
}

// benchMirror is comparison 6: a fresh mirror's initial sync against `git
// clone --mirror` over OpenSSH of the same repositories, then the time from a
// push to the primary until the mirror has the new ref.
func (e *env) benchMirror(g *gitSetup) (*Comparison, *Comparison) {
	repos := []string{"small", "medium"}
	sync := &Comparison{
		Title: "Mirror initial sync vs `git clone --mirror` over OpenSSH",
		What: "A fresh mirror (examples/server with application.mode=mirror, HTTPS with a test CA) registers with the primary; " +
			"the clock starts when the primary's administrator accepts it for the project holding the small and medium " +
			"repositories (so it includes the mirror noticing its approval), and stops when the mirror's status reports its initial sync done (polled every 25 ms; the refs " +
			"are then checked equal to the primary's). The peer clones the same two repositories with `git clone --mirror` " +
			"over OpenSSH, one after the other. Server CPU and memory are the primary's (the serving side) and sshd's.",
		Unit: "s", Reference: "OpenSSH clone --mirror", ServerSide: true,
	}
	mirrorRounds := e.rounds
	if e.quick {
		mirrorRounds = 2
	}
	var last *testutil.ServerNode
	var lastID string
	round := 0
	mirrorRun := func() (float64, int, error) {
		round++
		m, id := e.startMirror(g, fmt.Sprintf("bench-mirror-%d", round))
		t0 := time.Now()
		g.node.MustAPI(200, "POST", "/rest/mirroring/1.0/mirrorServers/"+id+"/accept",
			map[string]any{"mirroringMode": "SELECTED_PROJECTS", "projects": []string{benchProject}})
		deadline := t0.Add(opTimeout)
		for {
			st, err := readMirrorStatus(m)
			if err == nil && st.State == "ACCEPTED" && st.Initial.Done && st.Initial.ReposDone >= len(repos) {
				break
			}
			if time.Now().After(deadline) {
				return 0, 0, fmt.Errorf("initial sync not done in %v (%+v, %v):\n%s", opTimeout, st, err, m.Stderr)
			}
			time.Sleep(25 * time.Millisecond)
		}
		secs := time.Since(t0).Seconds()
		for _, r := range repos {
			want, err1 := refsOf(g.node.RepoDir(benchProject, r))
			got, err2 := refsOf(m.RepoDir(benchProject, r))
			if err1 != nil || err2 != nil || got != want {
				return 0, 0, fmt.Errorf("mirror refs of %s differ from the primary's after the initial sync (%v, %v)", r, err1, err2)
			}
		}
		if last != nil {
			last.Stop(syscall.SIGTERM)
			g.node.MustAPI(204, "DELETE", "/rest/mirroring/1.0/mirrorServers/"+lastID, nil)
		}
		last, lastID = m, id
		return secs, 0, nil
	}
	cloneRun := func() (float64, int, error) {
		dir, err := os.MkdirTemp("", "bench-mirror")
		if err != nil {
			return 0, 0, err
		}
		defer os.RemoveAll(dir)
		return timedRun(func() error {
			for _, r := range repos {
				if err := runGit(g.osEnv, dir, "clone", "-q", "--mirror", g.urls[r]["OpenSSH"], filepath.Join(dir, r+".git")); err != nil {
					return err
				}
			}
			return nil
		})
	}
	e.interleave(sync, mirrorRounds, "the clone comparisons before it read the same repositories, and each mirror run starts a fresh mirror.", contender{name: "gitfleet mirror", pid: g.node.PID, run: mirrorRun},
		contender{name: "OpenSSH clone --mirror", pid: g.sshd.PID, run: cloneRun})
	return sync, e.propagation(g, last)
}

func timedRun(f func() error) (float64, int, error) {
	v, err := timed(f)
	return v, 0, err
}

// propagation pushes single commits to the primary and measures how long the
// mirror takes to have each new ref in its own repository.
func (e *env) propagation(g *gitSetup, m *testutil.ServerNode) *Comparison {
	t := e.t
	pushes := 40
	if e.quick {
		pushes = 10
	}
	pushes = max(10, e.scaled(pushes))
	c := &Comparison{
		Title: "Push-to-mirror propagation",
		What: fmt.Sprintf("%d pushes of one commit each to the small repository on the primary, one after another; for each, "+
			"the time from `git push` returning to the mirror's own repository having the new ref (read with `git rev-parse` "+
			"in the mirror's repository directory every 5 ms). Figure: milliseconds per push.", pushes),
		Unit: "ms",
	}
	work := t.TempDir()
	wt := filepath.Join(work, "w")
	if err := runGit(g.gfEnv, work, "clone", "-q", g.urls["small"]["gitfleet"], wt); err != nil {
		t.Fatal(err)
	}
	mdir := m.RepoDir(benchProject, "small")
	p := c.Peer("gitfleet mirror")
	for i := range pushes {
		want := pushNext(t, g.gfEnv, wt, "propagation", i)
		t0 := time.Now()
		failed := 0
		for {
			out, _ := exec.Command("git", "-C", mdir, "rev-parse", "--verify", "-q", "refs/heads/propagation").Output()
			if strings.TrimSpace(string(out)) == want {
				break
			}
			if time.Since(t0) > time.Minute {
				failed = 1
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		p.Runs = append(p.Runs, Run{Value: float64(time.Since(t0).Microseconds()) / 1e3, Failed: failed})
	}
	v := p.Values()
	c.Notes = append(c.Notes, fmt.Sprintf("Percentiles by nearest rank over the %d pushes: p50 %s ms, p99 %s ms (below 100 pushes the p99 is the slowest push).",
		len(v), num(Percentile(v, 50)), num(Percentile(v, 99))))
	t.Logf("%s: p50 %s ms, p99 %s ms, failed %d", c.Title, num(Percentile(v, 50)), num(Percentile(v, 99)), p.Failed())
	return c
}
