package mirror_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// TestFarmJoin: the upstream's administrator approves a farm's first node
// once and issues a join token; a second node (its own home and key) joins
// with the token, accepted at once with the farm's projects, and syncs; the
// farm's nodes are listed with their last contact and feed position; a project
// added to the farm reaches every node; after the first node is removed the
// other keeps serving; a wrong token is refused with a message.
func TestFarmJoin(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	p.Seed(t, "OTHER", "lib", testutil.SmallRepo)
	dev := p.AddUser(t, "dev", []string{"*"}, []string{"*"})
	first := acceptedNode(t, p, "farm-1", mirror.ModeSelectedProjects, "PROJ")
	p.WaitSynced(t, first, "PROJ/app")

	var tok mirror.JoinToken
	if st, body := p.Do(t, true, http.MethodPost, "/mirrorServers/"+first.Mirror.ID()+"/join-token", mirror.JoinTokenRequest{ValidFor: "1h"}, &tok); st != http.StatusOK {
		t.Fatalf("join token: %d %s", st, body)
	}
	if !strings.HasPrefix(tok.Token, "gfjoin_") || tok.Farm != first.Mirror.ID() {
		t.Fatalf("join token %+v", tok)
	}
	if st, _ := p.Do(t, false, http.MethodPost, "/mirrorServers/"+first.Mirror.ID()+"/join-token", nil, nil); st != http.StatusUnauthorized && st != http.StatusForbidden {
		t.Fatalf("join token without the administrator: %d", st)
	}
	second := p.StartNode(t, mirrortest.NodeOptions{Name: "farm-2", Configure: func(c *mirror.Config) {
		fastSync(c)
		c.JoinToken = tok.Token
	}})
	mirrortest.WaitState(t, second.Mirror, mirror.StateAccepted) // no approval asked for
	p.WaitSynced(t, second, "PROJ/app")

	deadline := time.Now().Add(30 * time.Second)
	for {
		var nodes mirror.Page[mirror.FarmNode]
		if st, body := p.Do(t, true, http.MethodGet, "/mirrorServers/"+first.Mirror.ID()+"/nodes", nil, &nodes); st != http.StatusOK {
			t.Fatalf("farm nodes: %d %s", st, body)
		}
		ok := len(nodes.Values) == 2 && nodes.Values[1].ID == second.Mirror.ID() && nodes.Values[1].Farm == first.Mirror.ID()
		for _, n := range nodes.Values {
			ok = ok && n.State == mirror.StateAccepted && !n.LastContact.IsZero() && n.EventsBehind >= 0 &&
				n.InitialSync != nil && n.InitialSync.Done && n.InitialSync.ReposDone == 1 && n.InitialSync.ReposTotal == 1
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("farm nodes %+v", nodes.Values)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A project added to the farm reaches both nodes.
	if st, body := p.Do(t, true, http.MethodPut, "/mirrorServers/"+first.Mirror.ID()+"/projects/OTHER", nil, nil); st != http.StatusOK {
		t.Fatalf("add project: %d %s", st, body)
	}
	p.WaitSynced(t, first, "OTHER/lib", "PROJ/app")
	p.WaitSynced(t, second, "OTHER/lib", "PROJ/app")

	// The first node removed, the farm keeps working.
	if st, body := p.Do(t, true, http.MethodDelete, "/mirrorServers/"+first.Mirror.ID(), nil, nil); st/100 != 2 {
		t.Fatalf("remove the first node: %d %s", st, body)
	}
	first.Stop()
	g := p.Git(t, dev, second)
	work := t.TempDir()
	w := filepath.Join(work, "w")
	g.Run(work, "clone", "-q", p.SSHURL("PROJ", "app"), "w")
	id := g.CommitFile(w, "after.txt", "after", "after")
	g.Run(w, "push", "-q", "origin", "HEAD:main")
	c := filepath.Join(work, "c")
	g.Run(work, "clone", "-q", "--bare", second.SSHURL("PROJ", "app"), c)
	if got := strings.TrimSpace(g.Run(c, "rev-parse", "refs/heads/main")); got != id {
		t.Fatalf("the remaining node served main %s, pushed %s", got, id)
	}

	// A wrong token: refused, with the reason in the node's status.
	bad := p.StartNode(t, mirrortest.NodeOptions{Name: "farm-x", Configure: func(c *mirror.Config) {
		fastSync(c)
		c.JoinToken = "gfjoin_" + strings.Repeat("0", 64)
	}})
	mirrortest.WaitStatus(t, bad.Mirror, "join refused", func(s mirror.Status) bool {
		return strings.Contains(s.LastError, "join token") && s.State != mirror.StateAccepted
	})
}

// TestFarmVetRepairsDrift: a change the mirror had no event for (a ref moved in
// the mirror's own repository behind its back) is found by the next reconcile,
// repaired, and reported in the sync status.
func TestFarmVetRepairsDrift(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	n := p.StartNode(t, mirrortest.NodeOptions{Name: "vet", Configure: func(c *mirror.Config) {
		fastSync(c)
		c.SyncInterval = 200 * time.Millisecond
	}})
	mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
	p.Accept(t, n.Mirror.ID(), mirror.ModeAllProjects)
	p.WaitSynced(t, n, "PROJ/app")
	mirrortest.WaitStatus(t, n.Mirror, "initial sync done", func(s mirror.Status) bool { return s.Sync.Initial.Done })
	dir := mirrortest.RepoDir(n.Store.Root(), "PROJ", "app")
	g := testutil.NewGit(t)
	g.Run(dir, "update-ref", "refs/heads/drift", "HEAD")
	st := mirrortest.WaitStatus(t, n.Mirror, "drift repaired", func(s mirror.Status) bool { return s.Sync.Repairs > 0 })
	if len(st.Sync.Repaired) == 0 || st.Sync.Repaired[len(st.Sync.Repaired)-1] != "PROJ/app" {
		t.Fatalf("repaired %q", st.Sync.Repaired)
	}
	p.WaitSynced(t, n, "PROJ/app")
}

// TestDiagnoseFarmMembership: -diagnose names the farm a node belongs to, and
// for a node whose join token was refused says to ask for a new one.
func TestDiagnoseFarmMembership(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	first := acceptedNode(t, p, "farm-1", mirror.ModeAllProjects)
	var tok mirror.JoinToken
	if st, body := p.Do(t, true, http.MethodPost, "/mirrorServers/"+first.Mirror.ID()+"/join-token", nil, &tok); st != http.StatusOK {
		t.Fatalf("join token: %d %s", st, body)
	}
	member := p.StartNode(t, mirrortest.NodeOptions{Name: "farm-2", Configure: func(c *mirror.Config) { c.JoinToken = tok.Token }})
	mirrortest.WaitState(t, member.Mirror, mirror.StateAccepted)
	r := diagnose(t, p, member, func(c *mirror.Config) { c.JoinToken = tok.Token })
	expectCheck(t, r, mirror.CheckRegistration, mirror.CheckPass, "node of farm "+first.Mirror.ID())

	wrong := p.StartNode(t, mirrortest.NodeOptions{Name: "farm-x", Configure: func(c *mirror.Config) { c.JoinToken = "gfjoin_wrong" }})
	mirrortest.WaitStatus(t, wrong.Mirror, "join refused", func(s mirror.Status) bool { return strings.Contains(s.LastError, "join token") })
	r = diagnose(t, p, wrong, func(c *mirror.Config) { c.JoinToken = "gfjoin_wrong" })
	expectCheck(t, r, mirror.CheckRegistration, mirror.CheckFail, "join token", "plugin.mirroring.farm.join-token")
}
