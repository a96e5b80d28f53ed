package mirror_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

func TestReadAccessIsCached(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(t, "PROJ", "app", testutil.SmallRepo)
	clock := &mirrortest.Clock{}
	n := p.StartNode(t, mirrortest.NodeOptions{Name: "m", Configure: func(c *mirror.Config) {
		c.Now = clock.Now
		c.AuthCache = mirror.AuthCacheConfig{Allowed: 60 * time.Second, Denied: 30 * time.Second, Stale: 90 * time.Second}
	}})
	mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
	p.Accept(t, n.Mirror.ID(), mirror.ModeAllProjects)
	mirrortest.WaitState(t, n.Mirror, mirror.StateAccepted)
	reader := p.AddUser(t, "reader", []string{"PROJ"}, nil)
	ctx := context.Background()
	mayRead := func() (bool, error) { return n.Mirror.MayRead(ctx, reader.Key.Public, "PROJ", "app") }
	expect := func(step string, want bool) {
		t.Helper()
		got, err := mayRead()
		if err != nil || got != want {
			t.Fatalf("%s: MayRead = %v, %v; want %v", step, got, err, want)
		}
	}

	expect("granted", true)
	p.SetGrants(reader, nil, nil)
	expect("revoked, allowed answer cached", true)
	clock.Advance(61 * time.Second)
	expect("revoked, cache expired", false)
	p.SetGrants(reader, []string{"PROJ"}, nil)
	expect("granted again, denied answer cached", false)
	clock.Advance(31 * time.Second)
	expect("granted again, cache expired", true)

	// The upstream goes away: the cached answer serves past its expiry, up to
	// the stale bound.
	p.Kill()
	clock.Advance(61 * time.Second)
	expect("upstream down, answer expired but within the stale bound", true)
	clock.Advance(100 * time.Second)
	if ok, err := mayRead(); ok || !errors.Is(err, mirror.ErrAuthUnavailable) {
		t.Fatalf("upstream down beyond the stale bound: %v, %v", ok, err)
	}
	// A key never asked about is refused while the upstream is down.
	other := p.AddUser(t, "other", []string{"*"}, nil)
	if ok, _ := n.Mirror.MayRead(ctx, other.Key.Public, "PROJ", "app"); ok {
		t.Fatal("an unknown key was allowed while the upstream is down")
	}
}
