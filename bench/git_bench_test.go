//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
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
	dir, err := os.MkdirTemp("", "bench-clone")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	return runGit(env, dir, "clone", "-q", "--bare", url, filepath.Join(dir, "c.git"))
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
	e.interleave(c, e.rounds, "", cs...)
	return c
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
		Title: fmt.Sprintf("%d concurrent clones, %s repository", clients, repo),
		What: fmt.Sprintf("%d `git clone --bare` started at once. Figure: wall time until the last one ends; "+
			"a failed clone is counted, not retried.", clients),
		Unit: "s", Reference: "OpenSSH", ServerSide: true,
	}
	var cs []contender
	for _, p := range g.peers() {
		url := g.urls[repo][p.name]
		cs = append(cs, contender{name: p.name, pid: p.pid, run: func() (float64, int, error) {
			var wg sync.WaitGroup
			var mu sync.Mutex
			failed := 0
			t0 := time.Now()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := cloneOnce(p.env, url); err != nil {
						mu.Lock()
						failed++
						mu.Unlock()
						e.t.Logf("%s: %v", p.name, err)
					}
				}()
			}
			wg.Wait()
			return time.Since(t0).Seconds(), failed, nil
		}})
	}
	e.interleave(c, rounds, "the clone comparison before it used the same peers and repository.", cs...)
	c.Notes = append(c.Notes, "Fewer rounds than elsewhere: each round is the heaviest load of the run.")
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
