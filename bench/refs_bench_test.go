//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// manyRefsRepo makes a repository with one commit and n branches pointing at
// it (written as packed refs) and a detached HEAD, the source of a many-ref push.
func (e *env) manyRefsRepo(g *gitSetup, n int) string {
	t := e.t
	dir := filepath.Join(t.TempDir(), "src")
	steps := [][]string{
		{"init", "-q", dir},
		{"-C", dir, "-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-q", "--allow-empty", "-m", "one"},
	}
	for _, s := range steps {
		if err := runGit(g.plainEnv, "", s...); err != nil {
			t.Fatal(err)
		}
	}
	head, err := os.ReadFile(filepath.Join(dir, ".git", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	branch := strings.TrimSpace(strings.TrimPrefix(string(head), "ref:"))
	commit, err := os.ReadFile(filepath.Join(dir, ".git", filepath.FromSlash(branch)))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# pack-refs with: peeled fully-peeled sorted \n")
	for i := range n {
		fmt.Fprintf(&b, "%s refs/heads/b%06d\n", strings.TrimSpace(string(commit)), i)
	}
	if err := os.WriteFile(filepath.Join(dir, ".git", "packed-refs"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]string{{"-C", dir, "checkout", "-q", "--detach"}, {"-C", dir, "update-ref", "-d", branch}} {
		if err := runGit(g.plainEnv, "", s...); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// benchManyRefs is comparison 8: one push of n branches without --atomic
// (git's default, as `git push --mirror` of a migrated repository does; the
// receiving git commits each ref in a transaction of its own) into a new,
// empty repository, for n = 1,000, 10,000 and 100,000 (100,000 only in a full
// run): gitfleet's primary (examples/server, its store and its mirror feed),
// OpenSSH's sshd running git-receive-pack, and file://. Equal ratios across
// the sizes show that the cost grows linearly with the number of refs, as
// git's own does.
func (e *env) benchManyRefs(g *gitSetup) []*Comparison {
	sizes := []int{1000, 10000, 100000}
	if e.quick {
		sizes = sizes[:2]
	}
	var out []*Comparison
	for _, n := range sizes {
		src := e.manyRefsRepo(g, n)
		c := &Comparison{
			Title: fmt.Sprintf("Push of %d refs without --atomic", n),
			What: fmt.Sprintf("`git push` of %d branches (one commit) into a new empty repository, without --atomic, so that the "+
				"receiving git commits each ref on its own: to gitfleet's primary over SSH (which reports the push to its store's "+
				"subscribers and its mirror feed), to OpenSSH's sshd running git-receive-pack, and with `file://`. Figure: wall "+
				"time of the push.", n),
			Unit: "s", Reference: "OpenSSH", ServerSide: true,
		}
		rounds := e.rounds
		if n >= 100000 {
			rounds = min(rounds, 2)
		}
		seq := 0
		var cs []contender
		for _, p := range g.peers() {
			cs = append(cs, contender{name: p.name, pid: p.pid, run: func() (float64, int, error) {
				seq++
				var url string
				if p.name == "gitfleet" {
					name := fmt.Sprintf("refs%d-%d", n, seq)
					g.node.CreateRepo(e.t, benchProject, name)
					url = g.node.SSHURL(benchProject, name)
				} else {
					dir := filepath.Join(e.t.TempDir(), "target.git")
					if err := runGit(g.plainEnv, "", "init", "-q", "--bare", dir); err != nil {
						return 0, 0, err
					}
					url = "file://" + dir
					if p.name == "OpenSSH" {
						url = g.sshd.URL(dir)
					}
				}
				return timedRun(func() error {
					return runGit(p.env, src, "push", "-q", url, "refs/heads/*:refs/heads/*")
				})
			}})
		}
		e.interleave(c, rounds, fmt.Sprintf("each run pushes into a new repository (%d rounds)", rounds), cs...)
		out = append(out, c)
	}
	return out
}
