package mirror_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// mediumRepo is large enough (a few MB) for a fetch to be caught in flight by
// the progress hook, and small enough for a quick test.
var mediumRepo = testutil.RepoSpec{Commits: 150, FilesPerCommit: 8, FileSize: 3000, Dirs: 10, Branches: 4, Tags: 4, Seed: 14}

func TestForcePushDeletionAndRepoRemovalPropagate(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	p.Seed(t, "PROJ", "gone", testutil.SmallRepo)
	n := acceptedNode(t, p, "m", mirror.ModeAllProjects)
	p.WaitSynced(t, n, "PROJ/app", "PROJ/gone")

	g := p.Git(t, p.Seeder(t), n)
	dir := filepath.Join(t.TempDir(), "app")
	g.Run("", "clone", "-q", p.SSHURL("PROJ", "app"), dir)
	// Force-push main back to its first commit, and delete a branch.
	first := strings.TrimSpace(g.Run(dir, "rev-list", "--max-parents=0", "HEAD"))
	g.Run(dir, "push", "-q", "--force", "origin", first+":refs/heads/main")
	branches := strings.Fields(g.Run(dir, "for-each-ref", "--format=%(refname:strip=3)", "refs/remotes/origin/"))
	var victim string
	for _, b := range branches {
		if b != "main" && b != "HEAD" {
			victim = b
			break
		}
	}
	if victim == "" {
		t.Fatalf("no branch to delete among %v", branches)
	}
	g.Run(dir, "push", "-q", "origin", "--delete", victim)
	if err := p.Store.Delete(context.Background(), "PROJ", "gone"); err != nil {
		t.Fatal(err)
	}
	p.WaitSynced(t, n, "PROJ/app")
	refs, err := n.Store.Refs(context.Background(), "PROJ", "app")
	if err != nil {
		t.Fatal(err)
	}
	if refs["refs/heads/main"] != first || refs["refs/heads/"+victim] != "" {
		t.Fatalf("mirror refs after force-push and delete: main=%s %s=%s", refs["refs/heads/main"], victim, refs["refs/heads/"+victim])
	}
}

// progressSignal returns a FetchProgress hook that closes the channel the first
// time a fetch of project/slug has received data.
func progressSignal(project, slug string) (func(string, string, mesh.FetchProgress), <-chan struct{}) {
	ch := make(chan struct{})
	var once sync.Once
	return func(p, s string, fp mesh.FetchProgress) {
		if p == project && s == slug && fp.Bytes > 0 {
			once.Do(func() { close(ch) })
		}
	}, ch
}

func TestPrimaryKilledMidFetch(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	hook, started := progressSignal("PROJ", "big")
	n := p.StartNode(t, mirrortest.NodeOptions{Name: "m", Configure: func(c *mirror.Config) {
		fastSync(c)
		c.FetchProgress = hook
	}})
	mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
	p.Accept(t, n.Mirror.ID(), mirror.ModeAllProjects)
	p.WaitSynced(t, n, "PROJ/app")

	// A reader clones from the mirror, which asks the primary and caches the answer.
	reader := p.AddUser(t, "reader", []string{"*"}, nil)
	rg := p.Git(t, reader, n)
	before := filepath.Join(t.TempDir(), "before")
	rg.Run("", "clone", "-q", n.SSHURL("PROJ", "app"), before)
	oldHead := strings.TrimSpace(rg.Run(before, "rev-parse", "HEAD"))

	// app changes and a large repository appears; the primary dies while the
	// mirror is receiving the large one.
	g := p.Git(t, p.Seeder(t), n)
	work := filepath.Join(t.TempDir(), "app")
	g.Run("", "clone", "-q", p.SSHURL("PROJ", "app"), work)
	newHead := g.CommitFile(work, "after.txt", "after\n", "after")
	g.Run(work, "push", "-q", "origin", "HEAD:main")
	p.Seed(t, "PROJ", "big", mediumRepo)
	<-started
	p.Kill()

	// The mirror keeps serving what it has, and never half a fetch.
	mirrortest.WaitStatus(t, n.Mirror, "sync paused", func(s mirror.Status) bool { return s.Sync.Paused })
	during := filepath.Join(t.TempDir(), "during")
	rg.Run("", "clone", "-q", n.SSHURL("PROJ", "app"), during)
	if head := strings.TrimSpace(rg.Run(during, "rev-parse", "HEAD")); head != oldHead && head != newHead {
		t.Fatalf("clone during the outage: HEAD %s, want %s or %s", head, oldHead, newHead)
	}
	rg.Fsck(during)
	if refs, err := n.Store.Refs(context.Background(), "PROJ", "big"); err == nil && len(refs) != 0 {
		want, _ := p.Store.Refs(context.Background(), "PROJ", "big")
		if mesh.HashRefs(refs) != mesh.HashRefs(want) {
			t.Fatalf("the interrupted fetch left %d of %d refs", len(refs), len(want))
		}
	}

	// Back up: the mirror resumes by itself and converges.
	p.Revive(t)
	p.WaitSynced(t, n, "PROJ/app", "PROJ/big")
	mirrortest.WaitStatus(t, n.Mirror, "sync resumed", func(s mirror.Status) bool { return !s.Sync.Paused && s.LastError == "" })
	g.Fsck(mirrortest.RepoDir(n.Home.Repos, "PROJ", "big"))
	after := filepath.Join(t.TempDir(), "after")
	rg.Run("", "clone", "-q", n.SSHURL("PROJ", "app"), after)
	if head := strings.TrimSpace(rg.Run(after, "rev-parse", "HEAD")); head != newHead {
		t.Fatalf("clone after recovery: HEAD %s, want %s", head, newHead)
	}
}

func TestMirrorRestartedMidSync(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	repos := []string{"PROJ/big"}
	p.Seed(t, "PROJ", "big", mediumRepo)
	for _, slug := range []string{"a", "b", "c", "d"} {
		p.Seed(t, "PROJ", slug, testutil.SmallRepo)
		repos = append(repos, "PROJ/"+slug)
	}
	hook, started := progressSignal("PROJ", "big")
	n := p.StartNode(t, mirrortest.NodeOptions{Name: "m", Configure: func(c *mirror.Config) {
		fastSync(c)
		c.FetchProgress = hook
		c.Workers = 2
	}})
	mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
	p.Accept(t, n.Mirror.ID(), mirror.ModeAllProjects)
	<-started
	base := n.Mirror.Status().BaseURL
	n.Stop()

	home := n.Home
	n2 := p.StartNode(t, mirrortest.NodeOptions{Home: &home, Name: "m", BaseURL: base, Configure: fastSync})
	if n2.Mirror.ID() != n.Mirror.ID() {
		t.Fatal("restart changed the mirror id")
	}
	p.WaitSynced(t, n2, repos...)
	g := testutil.NewGit(t)
	for _, r := range repos {
		proj, slug, _ := strings.Cut(r, "/")
		g.Fsck(mirrortest.RepoDir(n2.Home.Repos, proj, slug))
	}
	// No debris is left next to the repositories.
	entries, err := os.ReadDir(filepath.Join(n2.Home.Repos, "PROJ"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(repos) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("repository directory holds %v", names)
	}
}

func TestTooOldCursorReconciles(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true, FeedSize: 3})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	n := acceptedNode(t, p, "m", mirror.ModeAllProjects)
	p.WaitSynced(t, n, "PROJ/app")
	base := n.Mirror.Status().BaseURL
	n.Stop()

	// More changes than the feed holds happen while the mirror is down.
	g := p.Git(t, p.Seeder(t))
	work := filepath.Join(t.TempDir(), "app")
	g.Run("", "clone", "-q", p.SSHURL("PROJ", "app"), work)
	for i := range 5 {
		g.CommitFile(work, "f.txt", strings.Repeat("x", i+1), "change")
		g.Run(work, "push", "-q", "origin", "HEAD:main")
	}
	p.Seed(t, "PROJ", "late", testutil.SmallRepo)

	home := n.Home
	n2 := p.StartNode(t, mirrortest.NodeOptions{Home: &home, Name: "m", BaseURL: base, Configure: fastSync})
	p.WaitSynced(t, n2, "PROJ/app", "PROJ/late")
	mirrortest.WaitStatus(t, n2.Mirror, "a resync", func(s mirror.Status) bool { return s.Sync.Resyncs > 0 })
}

// TestPeriodicReconcileRepairs damages a mirrored repository behind the sync
// engine's back (no event reports it): the periodic reconcile notices the refs
// hash differs and fetches.
func TestPeriodicReconcileRepairs(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	n := p.StartNode(t, mirrortest.NodeOptions{Name: "m", Configure: func(c *mirror.Config) {
		fastSync(c)
		c.SyncInterval = 300 * time.Millisecond
	}})
	mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
	p.Accept(t, n.Mirror.ID(), mirror.ModeAllProjects)
	p.WaitSynced(t, n, "PROJ/app")
	g := testutil.NewGit(t)
	g.Run(mirrortest.RepoDir(n.Home.Repos, "PROJ", "app"), "update-ref", "-d", "refs/heads/main")
	if ok, _ := p.InSync(n, "PROJ/app"); ok {
		t.Fatal("the damage did not change the refs")
	}
	p.WaitSynced(t, n, "PROJ/app")
}
