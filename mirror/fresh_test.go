package mirror_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// TestReadYourWrites: 40 rounds of "push to the primary, then at once clone from
// the mirror" with real git over OpenSSH: every clone has the push, none is
// stale (the mirror checks the upstream's refs hash before each read and waits
// for its fetch).
func TestReadYourWrites(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	dev := p.AddUser(t, "dev", []string{"*"}, []string{"*"})
	n := acceptedNode(t, p, "ryw", mirror.ModeAllProjects)
	p.WaitSynced(t, n, "PROJ/app")
	g := p.Git(t, dev, n)
	work := t.TempDir()
	w := filepath.Join(work, "w")
	g.Run(work, "clone", "-q", p.SSHURL("PROJ", "app"), "w")
	const rounds = 40
	for i := range rounds {
		id := g.CommitFile(w, "round.txt", strings.Repeat("x", i+1), "round")
		g.Run(w, "push", "-q", "origin", "HEAD:main")
		c := filepath.Join(work, "c")
		g.Run(work, "clone", "-q", "--bare", n.SSHURL("PROJ", "app"), c)
		if got := strings.TrimSpace(g.Run(c, "rev-parse", "refs/heads/main")); got != id {
			t.Fatalf("round %d: the mirror served main %s, pushed %s", i, got, id)
		}
		if err := os.RemoveAll(c); err != nil {
			t.Fatal(err)
		}
	}
	st := n.Mirror.FreshnessStats()
	if st.Fresh+st.Waited+st.Proxied != rounds || st.Unverified != 0 {
		t.Fatalf("freshness stats %+v after %d clones", st, rounds)
	}
}

// stuckRepos is a mirror's storage whose fetches, once block is set, wait
// until the test ends: a mirror that cannot catch up.
type stuckRepos struct {
	mesh.Repos
	block *atomic.Bool
	done  chan struct{}
}

func (r stuckRepos) Fetch(ctx context.Context, project, slug string, opts mesh.FetchOptions) (mesh.FetchResult, error) {
	if r.block.Load() {
		select {
		case <-r.done:
		case <-ctx.Done():
		}
		return mesh.FetchResult{}, errors.New("the test holds this fetch")
	}
	return r.Repos.Fetch(ctx, project, slug, opts)
}

// TestReadFromUpstreamWhenBehind: a mirror that cannot catch up within
// FreshnessWait serves the read from the upstream: the clone has the push,
// though the mirror's own repository does not; with the upstream gone, a read
// is served from the mirror with a warning on stderr.
func TestReadFromUpstreamWhenBehind(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	dev := p.AddUser(t, "dev", []string{"*"}, []string{"*"})
	var block atomic.Bool
	done := make(chan struct{})
	defer close(done)
	n := p.StartNode(t, mirrortest.NodeOptions{Name: "behind", Configure: func(c *mirror.Config) {
		fastSync(c)
		c.FreshnessWait = 300 * time.Millisecond
		c.Repos = stuckRepos{Repos: c.Repos, block: &block, done: done}
	}})
	mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
	p.Accept(t, n.Mirror.ID(), mirror.ModeAllProjects)
	mirrortest.WaitState(t, n.Mirror, mirror.StateAccepted)
	p.WaitSynced(t, n, "PROJ/app")
	block.Store(true)

	g := p.Git(t, dev, n)
	work := t.TempDir()
	w := filepath.Join(work, "w")
	g.Run(work, "clone", "-q", p.SSHURL("PROJ", "app"), "w")
	id := g.CommitFile(w, "new.txt", "new", "new")
	g.Run(w, "push", "-q", "origin", "HEAD:main")
	c := filepath.Join(work, "c")
	g.Run(work, "clone", "-q", "--bare", n.SSHURL("PROJ", "app"), c)
	if got := strings.TrimSpace(g.Run(c, "rev-parse", "refs/heads/main")); got != id {
		t.Fatalf("clone from a mirror that is behind: main %s, pushed %s", got, id)
	}
	if refs, _ := n.Store.Refs(context.Background(), "PROJ", "app"); refs["refs/heads/main"] == id {
		t.Fatal("the mirror's own repository has the push: the test did not hold its fetch")
	}
	if st := n.Mirror.FreshnessStats(); st.Proxied != 1 {
		t.Fatalf("freshness stats %+v, want one read served from the upstream", st)
	}

	// The upstream gone: the mirror's copy, with a warning. (The read
	// permission is cached from the clone above.)
	p.Kill()
	cmd := g.Command(work, "clone", "-q", "--bare", n.SSHURL("PROJ", "app"), filepath.Join(work, "d"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "may be behind") {
		t.Fatalf("clone with the upstream gone: %v\n%s", err, out)
	}
}
