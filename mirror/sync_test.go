package mirror_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// acceptedNode starts a mirror node and accepts it with mode and projects.
func acceptedNode(t *testing.T, p *mirrortest.Primary, name string, mode mirror.Mode, projects ...string) *mirrortest.Node {
	t.Helper()
	n := p.StartNode(t, mirrortest.NodeOptions{Name: name, Configure: fastSync})
	mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
	p.Accept(t, n.Mirror.ID(), mode, projects...)
	mirrortest.WaitState(t, n.Mirror, mirror.StateAccepted)
	return n
}

// fastSync shortens the mirror's intervals for tests.
func fastSync(c *mirror.Config) {
	c.EventWait = 2e9
}

func TestEndToEnd(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	p.Seed(t, "OTHER", "lib", testutil.SmallRepo)
	dev := p.AddUser(t, "dev", []string{"*"}, []string{"*"})
	reader := p.AddUser(t, "reader", []string{"PROJ"}, nil)
	outsider := p.AddUser(t, "outsider", nil, nil)

	sel := acceptedNode(t, p, "selected", mirror.ModeSelectedProjects, "PROJ")
	all := acceptedNode(t, p, "all", mirror.ModeAllProjects)
	p.WaitSynced(t, sel, "PROJ/app")
	p.WaitSynced(t, all, "OTHER/lib", "PROJ/app")
	st := mirrortest.WaitStatus(t, all.Mirror, "initial sync done", func(s mirror.Status) bool { return s.Sync.Initial.Done })
	if !st.Sync.Initial.Done || st.Sync.Initial.ReposTotal != 2 || st.Sync.Initial.ReposDone != 2 || st.Sync.Initial.BytesDone == 0 {
		t.Fatalf("initial sync progress: %+v", st.Sync.Initial)
	}

	// A push to the primary reaches both mirrors and is served by them.
	g := p.Git(t, dev, sel, all)
	work := t.TempDir()
	g.Run(work, "clone", "-q", p.SSHURL("PROJ", "app"), "app")
	commit := g.CommitFile(filepath.Join(work, "app"), "new.txt", "hello mirrors\n", "a new commit")
	g.Run(filepath.Join(work, "app"), "push", "-q", "origin", "HEAD:main")
	p.WaitSynced(t, sel, "PROJ/app")
	p.WaitSynced(t, all, "OTHER/lib", "PROJ/app")

	rg := p.Git(t, reader, sel, all)
	for _, n := range []*mirrortest.Node{sel, all} {
		dir := filepath.Join(t.TempDir(), "clone")
		rg.Run("", "clone", "-q", n.SSHURL("PROJ", "app"), dir)
		if head := strings.TrimSpace(rg.Run(dir, "rev-parse", "HEAD")); head != commit {
			t.Fatalf("clone from mirror: HEAD %s, want %s", head, commit)
		}
		rg.Fsck(dir)
	}

	// Read permission is the primary's: the outsider is refused by the mirrors,
	// the reader is refused a project they cannot read, and a project outside a
	// mirror's selection is not there.
	og := p.Git(t, outsider, sel, all)
	if _, err := og.TryRun("", "clone", "-q", all.SSHURL("PROJ", "app"), filepath.Join(t.TempDir(), "x")); err == nil {
		t.Fatal("a user without read permission cloned from the mirror")
	}
	if _, err := rg.TryRun("", "clone", "-q", all.SSHURL("OTHER", "lib"), filepath.Join(t.TempDir(), "x")); err == nil {
		t.Fatal("reader cloned a project they may not read")
	}
	if _, err := g.TryRun("", "clone", "-q", sel.SSHURL("OTHER", "lib"), filepath.Join(t.TempDir(), "x")); err == nil {
		t.Fatal("the selected-projects mirror served a project outside its selection")
	}

	// A push to a mirror is refused, naming the upstream.
	clone := filepath.Join(t.TempDir(), "push")
	g.Run("", "clone", "-q", all.SSHURL("PROJ", "app"), clone)
	g.CommitFile(clone, "m.txt", "x", "to the mirror")
	_, err := g.TryRun(clone, "push", "-q", "origin", "HEAD:main")
	if err == nil || !strings.Contains(err.Error(), "read-only mirror") || !strings.Contains(err.Error(), p.SSHURL("PROJ", "app")[len("ssh://git@"):]) {
		t.Fatalf("push to mirror: %v", err)
	}

	// A project added to the selection arrives; one removed disappears.
	if status, body := p.Do(t, true, http.MethodPut, "/mirrorServers/"+sel.Mirror.ID()+"/projects/OTHER", nil, nil); status != http.StatusOK {
		t.Fatalf("add project: %d %s", status, body)
	}
	p.WaitSynced(t, sel, "OTHER/lib", "PROJ/app")
	if status, body := p.Do(t, true, http.MethodDelete, "/mirrorServers/"+sel.Mirror.ID()+"/projects/PROJ", nil, nil); status != http.StatusOK {
		t.Fatalf("remove project: %d %s", status, body)
	}
	p.WaitSynced(t, sel, "OTHER/lib")
}

// lsRemote runs git ls-remote against url with the private key at keyPath.
func lsRemote(t *testing.T, keyPath, knownHosts, url string) error {
	t.Helper()
	g := testutil.NewGit(t)
	g.SetSSH(&testutil.Key{Path: keyPath}, knownHosts)
	_, err := g.TryRun("", "ls-remote", url)
	return err
}

func TestMirrorKeyAccessOverSSH(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	p.Seed(t, "OTHER", "lib", testutil.SmallRepo)
	url := p.SSHURL("PROJ", "app")

	pending := p.StartNode(t, mirrortest.NodeOptions{Name: "pending"})
	rejected := p.StartNode(t, mirrortest.NodeOptions{Name: "rejected"})
	accepted := p.StartNode(t, mirrortest.NodeOptions{Name: "accepted"})
	for _, n := range []*mirrortest.Node{pending, rejected, accepted} {
		mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
	}
	if status, _ := p.Do(t, true, http.MethodPost, "/mirrorServers/"+rejected.Mirror.ID()+"/reject", nil, nil); status != http.StatusOK {
		t.Fatal("reject failed")
	}
	p.Accept(t, accepted.Mirror.ID(), mirror.ModeSelectedProjects, "PROJ")
	key := func(n *mirrortest.Node) string { return filepath.Join(n.Home.Config, mirror.KeyFileName) }

	tests := []struct {
		name string
		node *mirrortest.Node
		url  string
		ok   bool
	}{
		{"pending", pending, url, false},
		{"rejected", rejected, url, false},
		{"accepted, its project", accepted, url, true},
		{"accepted, another project", accepted, p.SSHURL("OTHER", "lib"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := lsRemote(t, key(tc.node), p.KnownHosts, tc.url)
			if (err == nil) != tc.ok {
				t.Fatalf("ls-remote with the %s mirror's key: %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
	// A mirror key cannot push even to its own project.
	g := testutil.NewGit(t)
	g.SetSSH(&testutil.Key{Path: key(accepted)}, p.KnownHosts)
	dir := filepath.Join(t.TempDir(), "c")
	g.Run("", "clone", "-q", url, dir)
	g.CommitFile(dir, "x", "x", "x")
	if _, err := g.TryRun(dir, "push", "-q", "origin", "HEAD:main"); err == nil {
		t.Fatal("a mirror key pushed to the primary")
	}
	// Removed: access ends at once.
	if status, _ := p.Do(t, true, http.MethodDelete, "/mirrorServers/"+accepted.Mirror.ID(), nil, nil); status != http.StatusNoContent {
		t.Fatal("delete failed")
	}
	if err := lsRemote(t, key(accepted), p.KnownHosts, url); err == nil {
		t.Fatal("a removed mirror's key still reads")
	}
	mirrortest.WaitState(t, accepted.Mirror, mirror.StateRemoved)
}
