//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// gitSetup is one gitfleet primary and one OpenSSH sshd serving the same
// repository directories, with a git client environment for each and for
// file://.
type gitSetup struct {
	ca       *testutil.CA
	node     *testutil.ServerNode
	key      *testutil.Key
	sshd     *testutil.Sshd
	gfEnv    []string                     // git through the OpenSSH client to gitfleet
	osEnv    []string                     // git through the OpenSSH client to sshd
	plainEnv []string                     // git with no SSH (file://)
	urls     map[string]map[string]string // repo -> peer -> URL
}

const benchProject = "BENCH"

// startGit starts the primary (with HTTPS, for the mirror comparison), pushes
// the small and medium repositories into it, repacks them with a bitmap as a
// maintained server's repositories are, and starts sshd on the same
// directories.
func (e *env) startGit() *gitSetup {
	t := e.t
	t.Helper()
	g := &gitSetup{ca: testutil.NewCA(t, "gitfleet bench CA"), urls: map[string]map[string]string{}}
	g.node = testutil.StartServer(t, testutil.ServerOptions{Bin: e.serverBin, CA: g.ca})
	g.key = g.node.AddUser(t, "bench", benchProject)
	g.sshd = testutil.StartSshd(e.t, []*testutil.Key{g.key})
	e.notes = append(e.notes, "OpenSSH's sshd (the peer) runs as "+g.sshd.User+" with a throwaway configuration and SHLVL=1 in its sessions, so that "+
		"bash, the login shell that runs git-upload-pack, skips ~/.bashrc as a service account's shell would (a ~/.bashrc that "+
		"starts tools such as pyenv otherwise adds a fraction of a second to every OpenSSH session).")
	base := testutil.NewGit(t)
	g.plainEnv = append([]string(nil), base.Env...)
	g.gfEnv = append(append([]string(nil), base.Env...),
		"GIT_SSH_COMMAND="+testutil.SSHCommand(g.key.Path, g.node.KnownHosts(t, 0)), "GIT_SSH_VARIANT=ssh")
	g.osEnv = append(append([]string(nil), base.Env...),
		"GIT_SSH_COMMAND="+testutil.SSHCommand(g.key.Path, g.sshd.KnownHosts(e.t)), "GIT_SSH_VARIANT=ssh")
	for name, src := range map[string]string{"small": e.smallSrc, "medium": e.mediumSrc} {
		g.node.CreateRepo(t, benchProject, name)
		url := g.node.SSHURL(benchProject, name)
		if err := runGit(g.gfEnv, src, "push", "-q", url, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"); err != nil {
			t.Fatalf("seeding %s: %v", name, err)
		}
		dir := g.node.RepoDir(benchProject, name)
		if err := runGit(g.plainEnv, dir, "repack", "-a", "-d", "-q", "--write-bitmap-index"); err != nil {
			t.Fatal(err)
		}
		g.urls[name] = map[string]string{"gitfleet": url, "OpenSSH": g.sshd.URL(dir), "file://": "file://" + dir}
	}
	return g
}

// peers returns the three ways to reach repo, in the interleaving order.
func (g *gitSetup) peers() []struct {
	name string
	env  []string
	pid  func() int
} {
	return []struct {
		name string
		env  []string
		pid  func() int
	}{
		{"gitfleet", g.gfEnv, g.node.PID},
		{"OpenSSH", g.osEnv, g.sshd.PID},
		{"file://", g.plainEnv, nil},
	}
}

// cloneOnce clones url bare into a fresh directory and removes it.
func cloneOnce(env []string, url string) error {
	_, err := cloneOnceCPU(env, url)
	return err
}

// cloneOnceCPU is cloneOnce that also returns the client's CPU time.
func cloneOnceCPU(env []string, url string) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "bench-clone")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	return runGitCPU(env, dir, "clone", "-q", "--bare", url, filepath.Join(dir, "c.git"))
}

// benchClone is comparison 1: one clone at a time.
func (e *env) benchClone(g *gitSetup, repo string) *Comparison {
	c := &Comparison{
		Title: fmt.Sprintf("Clone over SSH, %s repository", repo),
		What: "`git clone --bare` of the whole repository, one at a time, with the real git and OpenSSH clients: " +
			"to gitfleet's server (examples/server), to OpenSSH's sshd running git-upload-pack on the same directory, " +
			"and with `file://` (git's own transport, no SSH: the floor). Figure: wall time of one clone.",
		Unit: "s", Reference: "OpenSSH", ServerSide: true,
	}
	var cs []contender
	for _, p := range g.peers() {
		url := g.urls[repo][p.name]
		cs = append(cs, contender{name: p.name, pid: p.pid, run: func() (float64, int, error) {
			v, err := timed(func() error { return cloneOnce(p.env, url) })
			return v, 0, err
		}})
	}
	if repo == "medium" {
		// The same server with its caches off: what a cached clone saves.
		env, url, pid := e.uncachedNode(g, repo)
		cs = append(cs, contender{name: uncachedPeer, pid: pid, run: func() (float64, int, error) {
			v, err := timed(func() error { return cloneOnce(env, url) })
			return v, 0, err
		}})
	}
	e.interleave(c, e.rounds, "", cs...)
	if on, off := c.Peer("gitfleet"), c.Peer(uncachedPeer); on != nil && off != nil && off.MedianCPU() > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("gitfleet's server CPU per clone with its caches (the default, every clone after the first "+
			"answered from the response cache) is %s of the same server's with them off (`plugin.bitbucket-git.mesh.pack-cache.enabled=false`: "+
			"upload-pack and pack-objects every time); what remains is mostly the SSH transport of the pack.",
			ratio(float64(on.MedianCPU())/float64(off.MedianCPU()))))
	}
	return c
}

// uncachedPeer names gitfleet with its pack and response caches off.
const uncachedPeer = "gitfleet, caches off"

// uncachedNode starts a second gitfleet primary with its caches off, holding
// the same repository, and returns the git environment and URL to clone it
// with and the server's process.
func (e *env) uncachedNode(g *gitSetup, repo string) ([]string, string, func() int) {
	t := e.t
	n := testutil.StartServer(t, testutil.ServerOptions{Bin: e.serverBin, CA: g.ca,
		Env: []string{"PLUGIN_BITBUCKETGIT_MESH_PACKCACHE_ENABLED=false"}})
	key := n.AddUser(t, "bench", benchProject)
	env := append(append([]string(nil), g.plainEnv...),
		"GIT_SSH_COMMAND="+testutil.SSHCommand(key.Path, n.KnownHosts(t, 0)), "GIT_SSH_VARIANT=ssh")
	n.CreateRepo(t, benchProject, repo)
	url := n.SSHURL(benchProject, repo)
	if err := runGit(env, g.node.RepoDir(benchProject, repo), "push", "-q", url, "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"); err != nil {
		t.Fatalf("seeding the uncached node: %v", err)
	}
	if err := runGit(g.plainEnv, n.RepoDir(benchProject, repo), "repack", "-a", "-d", "-q", "--write-bitmap-index"); err != nil {
		t.Fatal(err)
	}
	if metrics := string(n.MustAPI(200, "GET", "/metrics", nil)); !strings.Contains(metrics, "gitfleet_pack_cache_enabled 0\n") {
		t.Fatalf("the uncached node's pack cache is on:\n%s", metrics)
	}
	return env, url, n.PID
}

// benchLsRemote is comparison 2: the rate of `git ls-remote`, each a new
// connection, one after another.
func (e *env) benchLsRemote(g *gitSetup) *Comparison {
	n := 10
	if e.quick {
		n = 5
	}
	n = max(5, e.scaled(n))
	c := &Comparison{
		Title: "`git ls-remote` connection rate",
		What: fmt.Sprintf("%d `git ls-remote` of the medium repository one after another, each a new SSH connection "+
			"(protocol v2, so the server sends only what ls-refs asks for). Figure: operations per second.", n),
		Unit: "ops/s", HigherIsBetter: true, Reference: "OpenSSH", ServerSide: true,
	}
	var cs []contender
	for _, p := range g.peers() {
		url := g.urls["medium"][p.name]
		cs = append(cs, contender{name: p.name, pid: p.pid, run: func() (float64, int, error) {
			secs, err := timed(func() error {
				for range n {
					if err := runGit(p.env, "", "ls-remote", "-q", url, "refs/heads/main"); err != nil {
						return err
					}
				}
				return nil
			})
			return float64(n) / secs, 0, err
		}})
	}
	e.interleave(c, e.rounds, "", cs...)
	return c
}

// benchConcurrent is comparison 3: 32 clones started at once.
func (e *env) benchConcurrent(g *gitSetup) *Comparison {
	const clients = 32
	repo, rounds := "medium", 2
	if e.quick {
		repo = "small"
	}
	c := &Comparison{
		Title: fmt.Sprintf("Clone storm: %d concurrent clones, %s repository", clients, repo),
		What: fmt.Sprintf("%d `git clone --bare` started at once (protocol v2, git's default), as the CI jobs a push starts. "+
			"gitfleet runs with its defaults: the pack cache and the response cache on. Figure: wall time until the last one ends; "+
			"a failed clone is counted, not retried.", clients),
		Unit: "s", Reference: "OpenSSH", ServerSide: true,
	}
	before := cacheCounters(e, g)
	var cs []contender
	clientCPU := map[string]*atomic.Int64{}
	runs := map[string]int{}
	for _, p := range g.peers() {
		url := g.urls[repo][p.name]
		cpu := &atomic.Int64{}
		clientCPU[p.name] = cpu
		cs = append(cs, contender{name: p.name, pid: p.pid, run: func() (float64, int, error) {
			runs[p.name]++
			return e.atOnce(p.name, clients, func(int) error {
				d, err := cloneOnceCPU(p.env, url)
				cpu.Add(int64(d))
				return err
			})
		}})
	}
	e.interleave(c, rounds, "the clone comparison before it used the same peers and repository.", cs...)
	c.Notes = append(c.Notes, "Fewer rounds than elsewhere: each round is the heaviest load of the run.")
	var parts []string
	for _, p := range g.peers() {
		if n := runs[p.name]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %s s", p.name, num(time.Duration(clientCPU[p.name].Load()/int64(n)).Seconds())))
		}
	}
	c.Notes = append(c.Notes, "Clients' CPU per storm, on the same two cores (each `git clone` with what it waited for: fetch-pack, "+
		"index-pack and the ssh client; for file:// also git's own upload-pack and pack-objects, the server side of that transport): "+
		strings.Join(parts, ", ")+". With a server that cost nothing, a storm could not take less wall time than its "+
		"clients' CPU over the two cores.")
	after := cacheCounters(e, g)
	d := func(k string) int64 { return after[k] - before[k] }
	if n := d("response_hits_total") + d("hits_total") + d("joins_total") + d("misses_total"); n > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("gitfleet's caches over this comparison's clones: %d fetches answered whole from the response cache, "+
			"and of those that reached the pack cache %d hits, %d joins of a pack being made and %d misses (pack-objects runs); "+
			"hit rate %.0f%% (everything but the misses); %d sessions answered without starting git at all.",
			d("response_hits_total"), d("hits_total"), d("joins_total"), d("misses_total"), 100*float64(n-d("misses_total"))/float64(n),
			d("sessions_without_git_total")))
	}
	if gf, ossh := c.Peer("gitfleet"), c.Peer("OpenSSH"); gf != nil && ossh != nil && ossh.MedianCPU() > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("Server CPU per storm: gitfleet %s of OpenSSH's (sshd and git).", ratio(float64(gf.MedianCPU())/float64(ossh.MedianCPU()))))
	}
	return c
}

// atOnce runs op(0) to op(n-1) at once and returns the wall time in seconds
// until the last one ends and how many failed (each failure is logged, not
// retried).
func (e *env) atOnce(name string, n int, op func(i int) error) (float64, int, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := op(i); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				e.t.Logf("%s: %v", name, err)
			}
		}()
	}
	wg.Wait()
	return time.Since(t0).Seconds(), failed, nil
}

// cacheCounters reads the gitfleet server's pack cache counters from its
// /metrics (gitfleet_pack_cache_*), by name without the prefix.
func cacheCounters(e *env, g *gitSetup) map[string]int64 {
	out := map[string]int64{}
	code, body := g.node.API("GET", "/metrics", nil)
	if code != 200 {
		e.t.Logf("/metrics: %d", code)
		return out
	}
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		name, isCache := strings.CutPrefix(name, "gitfleet_pack_cache_")
		if !ok || !isCache {
			continue
		}
		if v, err := strconv.ParseInt(val, 10, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// benchNoopFetch is comparison 11: 64 concurrent `git fetch` that find
// nothing new, the CI poll that most often finds nothing (Bitbucket's
// "Scaling for CI" guide: about nine polls in ten).
func (e *env) benchNoopFetch(g *gitSetup) *Comparison {
	const clients = 64
	repo := "medium"
	if e.quick {
		repo = "small"
	}
	c := &Comparison{
		Title: fmt.Sprintf("CI polls: %d concurrent no-op fetches, %s repository", clients, repo),
		What: fmt.Sprintf("%d `git fetch` started at once into up-to-date bare clones (made once per peer, then copied with "+
			"hard links), so that each one only lists the refs and finds nothing to fetch. Figure: wall time until the last one ends; "+
			"the notes give the server's CPU per fetch.", clients),
		Unit: "s", Reference: "OpenSSH", ServerSide: true,
	}
	base := e.t.TempDir()
	var cs []contender
	for _, p := range g.peers()[:2] {
		url := g.urls[repo][p.name]
		seed := filepath.Join(base, p.name+"-seed.git")
		if err := runGit(p.env, base, "clone", "-q", "--bare", url, seed); err != nil {
			e.t.Fatal(err)
		}
		dirs := make([]string, clients)
		for i := range dirs {
			dirs[i] = filepath.Join(base, fmt.Sprintf("%s-%d.git", p.name, i))
			if err := runGit(p.env, base, "clone", "-q", "--bare", "--local", seed, dirs[i]); err != nil {
				e.t.Fatal(err)
			}
			if err := runGit(p.env, dirs[i], "remote", "set-url", "origin", url); err != nil {
				e.t.Fatal(err)
			}
		}
		cs = append(cs, contender{name: p.name, pid: p.pid, run: func() (float64, int, error) {
			return e.atOnce(p.name, clients, func(i int) error {
				return runGit(p.env, dirs[i], "fetch", "-q", "origin", "+refs/heads/*:refs/heads/*")
			})
		}})
	}
	before := cacheCounters(e, g)
	e.interleave(c, e.rounds, "", cs...)
	after := cacheCounters(e, g)
	for _, p := range c.Peers {
		c.Notes = append(c.Notes, fmt.Sprintf("%s: server CPU %s ms per fetch.", p.Name, num(float64(p.MedianCPU().Microseconds())/1000/clients)))
	}
	if n := after["sessions_without_git_total"] - before["sessions_without_git_total"]; n > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("gitfleet answered %d of these fetches' sessions from its response cache without starting git "+
			"(capability advertisement and ls-refs answer kept from the first poll after a change).", n))
	}
	return c
}

// benchSidecar is comparison 4: the same clone served by a store in the
// server process and by the supervised mesh sidecar.
func (e *env) benchSidecar() *Comparison {
	c := &Comparison{
		Title: "Clone through the mesh sidecar vs the in-process store",
		What: "`git clone --bare` of the medium repository over gitfleet's SSH, with the server's storage in its own " +
			"process and with the storage in the supervised sidecar on loopback.",
		Unit: "s", Reference: "in-process store", ServerSide: true,
	}
	e.sidecarComparison(c)
	return c
}
