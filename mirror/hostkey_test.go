package mirror_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// push commits to PROJ/app on the primary and returns the new commit.
func push(t *testing.T, p *mirrortest.Primary, content string) string {
	t.Helper()
	g := p.Git(t, p.Seeder(t))
	work := filepath.Join(t.TempDir(), "app")
	g.Run("", "clone", "-q", p.SSHURL("PROJ", "app"), work)
	id := g.CommitFile(work, "f.txt", content, "change")
	g.Run(work, "push", "-q", "origin", "HEAD:main")
	return id
}

func TestHostKeyChangeStopsSync(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, p *mirrortest.Primary)
	}{
		{"offered by the upstream", func(t *testing.T, p *mirrortest.Primary) { p.RotateHostKey(t) }},
		{"presented over SSH only", func(t *testing.T, p *mirrortest.Primary) { p.ChangeSSHHostKeyOnly(t) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
			p.Seed(t, "PROJ", "app", testutil.SmallRepo)
			n := acceptedNode(t, p, "m", mirror.ModeAllProjects)
			p.WaitSynced(t, n, "PROJ/app")
			pinned := n.Mirror.Status().PinnedHostKeys

			tc.change(t, p)
			push(t, p, "after the key change\n")
			st := mirrortest.WaitStatus(t, n.Mirror, "a host key error", func(s mirror.Status) bool {
				return strings.Contains(s.LastError, "host key")
			})
			if ok, _ := p.InSync(n, "PROJ/app"); ok {
				t.Fatal("the mirror fetched from a host with a changed key")
			}
			if strings.Join(st.PinnedHostKeys, ",") != strings.Join(pinned, ",") {
				t.Fatalf("pinned keys changed by themselves: %v -> %v", pinned, st.PinnedHostKeys)
			}
			if tc.name == "offered by the upstream" {
				if !st.HostKeyChanged {
					t.Fatalf("status does not flag the change: %+v", st)
				}
				// An operator who confirmed the change trusts the new key; sync resumes.
				if err := n.Mirror.TrustHostKeys(); err != nil {
					t.Fatal(err)
				}
				p.WaitSynced(t, n, "PROJ/app")
			}
		})
	}
}
