package mirrortest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// Git returns a git client acting as u, trusting the host keys of the primary
// and of the given nodes.
func (p *Primary) Git(t testing.TB, u *User, nodes ...*Node) *testutil.Git {
	t.Helper()
	g := testutil.NewGit(t)
	var b strings.Builder
	b.WriteString(testutil.KnownHostsLine("127.0.0.1", p.SSHPort, p.HostKey.Public) + "\n")
	for _, n := range nodes {
		b.WriteString(testutil.KnownHostsLine("127.0.0.1", n.SSHPort, n.HostKey.Public) + "\n")
	}
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	g.SetSSH(u.Key, kh)
	return g
}

// Seed creates project/slug on the primary and pushes a repository built from
// spec into it over SSH, as a user who may write everything, in one atomic push:
// the repository goes from no refs to all of them, so any state a mirror copies
// is one or the other.
func (p *Primary) Seed(t testing.TB, project, slug string, spec testutil.RepoSpec) {
	t.Helper()
	if err := p.Store.Create(context.Background(), project, slug); err != nil {
		t.Fatal(err)
	}
	if p.seeder == nil {
		p.seeder = p.AddUser(t, "seeder", []string{"*"}, []string{"*"})
	}
	src := testutil.CachedRepo(t, spec)
	p.Git(t, p.seeder).Run(src, "push", "-q", "--atomic", "--mirror", p.SSHURL(project, slug))
}

// Seeder returns the user who may write everything.
func (p *Primary) Seeder(t testing.TB) *User {
	if p.seeder == nil {
		p.seeder = p.AddUser(t, "seeder", []string{"*"}, []string{"*"})
	}
	return p.seeder
}

// InSync reports whether n holds exactly the repositories repos ("PROJECT/slug")
// with the primary's refs.
func (p *Primary) InSync(n *Node, repos ...string) (bool, string) {
	ctx := context.Background()
	local, err := n.Store.List(ctx)
	if err != nil {
		return false, err.Error()
	}
	var have []string
	for _, ri := range local {
		have = append(have, ri.Project+"/"+ri.Slug)
	}
	want := slices.Clone(repos)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		return false, "mirror holds " + strings.Join(have, ",") + ", want " + strings.Join(want, ",")
	}
	for _, r := range repos {
		proj, slug, _ := strings.Cut(r, "/")
		ph, err := p.Store.RefsHash(ctx, proj, slug)
		if err != nil {
			return false, err.Error()
		}
		nh, err := n.Store.RefsHash(ctx, proj, slug)
		if err != nil {
			return false, err.Error()
		}
		if ph != nh {
			return false, r + " differs"
		}
	}
	return true, ""
}

// WaitSynced waits up to a minute for n to hold exactly repos with the primary's
// refs.
func (p *Primary) WaitSynced(t testing.TB, n *Node, repos ...string) {
	t.Helper()
	p.WaitSyncedFor(t, n, time.Minute, repos...)
}

// WaitSyncedFor is WaitSynced with a timeout of d.
func (p *Primary) WaitSyncedFor(t testing.TB, n *Node, d time.Duration, repos ...string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := p.InSync(n, repos...)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror not in sync: %s; status %+v", why, n.Mirror.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RepoDir returns the on-disk directory of project/slug in a store rooted at root.
func RepoDir(root, project, slug string) string {
	return filepath.Join(root, project, slug+".git")
}
