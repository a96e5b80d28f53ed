package mirror_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
	bolt "go.etcd.io/bbolt"
)

// stateImpl is one implementation of the state interfaces under test.
type stateImpl struct {
	name string
	open func(t *testing.T) interface {
		mirror.MirrorState
		mirror.UpstreamState
	}
}

var stateImpls = []stateImpl{
	{"bolt", func(t *testing.T) interface {
		mirror.MirrorState
		mirror.UpstreamState
	} {
		return mirror.NewBoltState(mirrortest.OpenDB(t, filepath.Join(t.TempDir(), "state.db")))
	}},
	{"memory", func(t *testing.T) interface {
		mirror.MirrorState
		mirror.UpstreamState
	} {
		return mirror.NewMemoryState()
	}},
}

// TestMirrorStateContract holds every MirrorState implementation to the
// interface's contract.
func TestMirrorStateContract(t *testing.T) {
	ctx := context.Background()
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			st := impl.open(t)
			if _, err := st.Identity(ctx); !errors.Is(err, gitfleet.ErrNotFound) {
				t.Fatalf("identity before setup: %v, want ErrNotFound", err)
			}
			if r, err := st.Registration(ctx); err != nil || r.State != "" || r.Registered {
				t.Fatalf("registration before setup: %+v %v", r, err)
			}
			if c, err := st.Cursor(ctx); err != nil || c != 0 {
				t.Fatalf("cursor before setup: %d %v", c, err)
			}
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			id := mirror.Identity{ID: "0b8a7a2e-8f5e-4c57-9a57-3f6f2f4e0d11", Setup: mirror.SetupConfig{BaseURL: "https://m.example.com"},
				PublicKey: "ssh-ed25519 AAAA", Created: at}
			if err := st.SetIdentity(ctx, id); err != nil {
				t.Fatal(err)
			}
			if got, err := st.Identity(ctx); err != nil || got.ID != id.ID || got.Setup != id.Setup || got.PublicKey != id.PublicKey || !got.Created.Equal(at) {
				t.Fatalf("identity: %+v %v", got, err)
			}
			reg := mirror.Registration{Registered: true, State: mirror.StateAccepted, Mode: mirror.ModeSelectedProjects,
				Projects: []string{"A", "B"}, SSHBaseURL: "ssh://git@h:7999", HostKeys: []string{"ssh-ed25519 K"}}
			if err := st.SetRegistration(ctx, reg); err != nil {
				t.Fatal(err)
			}
			reg.Projects[0] = "CHANGED" // the store keeps its own copy
			if got, err := st.Registration(ctx); err != nil || got.State != mirror.StateAccepted || !slices.Equal(got.Projects, []string{"A", "B"}) ||
				!slices.Equal(got.HostKeys, reg.HostKeys) || got.SSHBaseURL != reg.SSHBaseURL {
				t.Fatalf("registration: %+v %v", got, err)
			}
			if err := st.SetCursor(ctx, 42); err != nil {
				t.Fatal(err)
			}
			if c, err := st.Cursor(ctx); err != nil || c != 42 {
				t.Fatalf("cursor: %d %v", c, err)
			}
			a, b := gitfleet.RepoName{Project: "P", Slug: "a"}, gitfleet.RepoName{Project: "P", Slug: "b"}
			for _, r := range []gitfleet.RepoName{a, b} {
				if err := st.SetRepoSync(ctx, r, at); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.DeleteRepoSync(ctx, a); err != nil {
				t.Fatal(err)
			}
			if err := st.DeleteRepoSync(ctx, gitfleet.RepoName{Project: "X", Slug: "y"}); err != nil {
				t.Fatalf("forget an unknown repository: %v", err)
			}
			if got, err := st.RepoSyncs(ctx); err != nil || len(got) != 1 || !got[b].Equal(at) {
				t.Fatalf("repo syncs: %v %v", got, err)
			}
		})
	}
}

// TestUpstreamStateContract holds every UpstreamState implementation to the
// interface's contract.
func TestUpstreamStateContract(t *testing.T) {
	ctx := context.Background()
	errRefused := errors.New("refused")
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			st := impl.open(t)
			if _, _, err := st.Mirror(ctx, "nobody"); !errors.Is(err, gitfleet.ErrNotFound) {
				t.Fatalf("unknown mirror: %v", err)
			}
			if list, err := st.Mirrors(ctx); err != nil || len(list) != 0 {
				t.Fatalf("empty list: %v %v", list, err)
			}
			a := &mirror.MirrorRecord{ID: "b-id", Name: "b", Fingerprint: "fp-b", State: mirror.StatePending}
			b := &mirror.MirrorRecord{ID: "a-id", Name: "a", Fingerprint: "fp-a", State: mirror.StatePending}
			for _, r := range []*mirror.MirrorRecord{a, b} {
				if _, err := st.AddMirror(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := st.AddMirror(ctx, &mirror.MirrorRecord{ID: "b-id", Fingerprint: "fp-other"}); !errors.Is(err, mirror.ErrMirrorExists) || got == nil || got.Fingerprint != "fp-b" {
				t.Fatalf("add an existing id: %+v %v", got, err)
			}
			if _, err := st.AddMirror(ctx, &mirror.MirrorRecord{ID: "c-id", Fingerprint: "fp-a"}); !errors.Is(err, mirror.ErrKeyInUse) {
				t.Fatalf("add another mirror's key: %v", err)
			}
			if list, err := st.Mirrors(ctx); err != nil || len(list) != 2 || list[0].ID != "a-id" || list[1].ID != "b-id" {
				t.Fatalf("list: %+v %v", list, err)
			}
			if got, err := st.MirrorByKey(ctx, "fp-b"); err != nil || got.ID != "b-id" {
				t.Fatalf("by key: %+v %v", got, err)
			}
			got, err := st.UpdateMirror(ctx, "b-id", func(r *mirror.MirrorRecord) error {
				r.State, r.Projects = mirror.StateAccepted, []string{"P"}
				return nil
			})
			if err != nil || got.State != mirror.StateAccepted {
				t.Fatalf("update: %+v %v", got, err)
			}
			if _, err := st.UpdateMirror(ctx, "b-id", func(r *mirror.MirrorRecord) error {
				r.State = mirror.StateRejected
				return errRefused
			}); !errors.Is(err, errRefused) {
				t.Fatalf("refused update: %v", err)
			}
			if rec, removed, err := st.Mirror(ctx, "b-id"); err != nil || removed || rec.State != mirror.StateAccepted || !slices.Equal(rec.Projects, []string{"P"}) {
				t.Fatalf("after a refused update: %+v %v %v", rec, removed, err)
			}
			at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			if rec, err := st.RemoveMirror(ctx, "b-id", at); err != nil || !rec.Updated.Equal(at) {
				t.Fatalf("remove: %+v %v", rec, err)
			}
			if rec, removed, err := st.Mirror(ctx, "b-id"); err != nil || !removed || rec.Name != "b" {
				t.Fatalf("removed mirror: %+v %v %v", rec, removed, err)
			}
			if _, err := st.MirrorByKey(ctx, "fp-b"); !errors.Is(err, gitfleet.ErrNotFound) {
				t.Fatalf("removed mirror's key: %v", err)
			}
			if _, err := st.AddMirror(ctx, &mirror.MirrorRecord{ID: "b-id", Fingerprint: "fp-new"}); !errors.Is(err, mirror.ErrMirrorRemoved) {
				t.Fatalf("re-add a removed id: %v", err)
			}
			if _, err := st.UpdateMirror(ctx, "b-id", func(*mirror.MirrorRecord) error { return nil }); !errors.Is(err, gitfleet.ErrNotFound) {
				t.Fatalf("update a removed mirror: %v", err)
			}
			if _, err := st.RemoveMirror(ctx, "b-id", at); !errors.Is(err, gitfleet.ErrNotFound) {
				t.Fatalf("remove twice: %v", err)
			}

			if err := st.UseNonce(ctx, "a-id", 100, "n1", 0); err != nil {
				t.Fatal(err)
			}
			if err := st.UseNonce(ctx, "a-id", 100, "n1", 0); !errors.Is(err, mirror.ErrReplay) {
				t.Fatalf("replayed nonce: %v", err)
			}
			if err := st.UseNonce(ctx, "a-id", 101, "n2", 0); err != nil {
				t.Fatal(err)
			}
			if seq, err := st.FeedSeq(ctx); err != nil || seq != 0 {
				t.Fatalf("feed seq before any: %d %v", seq, err)
			}
			if err := st.SetFeedSeq(ctx, 7); err != nil {
				t.Fatal(err)
			}
			if seq, err := st.FeedSeq(ctx); err != nil || seq != 7 {
				t.Fatalf("feed seq: %d %v", seq, err)
			}
		})
	}
}

// TestBoltStateReadsReadOnly: NewBoltState writes nothing, so a database opened
// read-only (as a diagnosis opens a running mirror's) can be read.
func TestBoltStateReadsReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	ro, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	st := mirror.NewBoltState(ro)
	ctx := context.Background()
	if _, err := st.Identity(ctx); !errors.Is(err, gitfleet.ErrNotFound) {
		t.Fatalf("identity: %v", err)
	}
	if _, err := st.MirrorByKey(ctx, "fp"); !errors.Is(err, gitfleet.ErrNotFound) {
		t.Fatalf("mirror by key: %v", err)
	}
	if list, err := st.Mirrors(ctx); err != nil || len(list) != 0 {
		t.Fatalf("mirrors: %v %v", list, err)
	}
}

// TestInMemoryStateEndToEnd runs a primary and a mirror without bbolt and
// without a key file: the state seam and an in-memory key are enough for
// registration, approval and the SSH grant.
func TestInMemoryStateEndToEnd(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{State: mirror.NewMemoryState()})
	home := testutil.NewHome(t)
	key, err := mirror.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	m := p.NewMirror(t, mirrortest.MirrorOptions{Home: &home, Name: "memory", Configure: func(c *mirror.Config) {
		c.State, c.Key = mirror.NewMemoryState(), key
	}})
	mirrortest.Run(t, m)
	mirrortest.WaitState(t, m, mirror.StatePending)
	if p.DB != nil {
		t.Fatal("the primary opened a database")
	}
	p.Accept(t, m.ID(), mirror.ModeSelectedProjects, "PROJ")
	if st := mirrortest.WaitState(t, m, mirror.StateAccepted); len(st.PinnedHostKeys) == 0 {
		t.Fatalf("accepted without pinned host keys: %+v", st)
	}
	if g, ok := p.Upstream.MirrorKey(key.PublicKey()); !ok || !g.CanRead("PROJ") || g.CanRead("OTHER") {
		t.Fatalf("grant: %+v %v", g, ok)
	}
	for _, f := range []string{home.DB, mirror.KeyFile(gitfleet.Home(home.Dir))} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists (%v): the mirror wrote a file", f, err)
		}
	}
}

// TestLoadOrCreateKey: the key is created once with mode 0600, loaded
// afterwards, and refused once others may read it.
func TestLoadOrCreateKey(t *testing.T) {
	home := gitfleet.Home(t.TempDir())
	if _, err := mirror.LoadKey(home); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("load before create: %v", err)
	}
	k1, err := mirror.LoadOrCreateKey(home)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(mirror.KeyFile(home))
	if err != nil || fi.Mode().Perm() != 0o600 || k1.File != mirror.KeyFile(home) {
		t.Fatalf("key file: %v %v (%q)", fi, err, k1.File)
	}
	k2, err := mirror.LoadOrCreateKey(home)
	if err != nil || mirrortest.PublicLine(k2.PublicKey()) != mirrortest.PublicLine(k1.PublicKey()) {
		t.Fatalf("second call made another key: %v", err)
	}
	if err := os.Chmod(mirror.KeyFile(home), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.LoadOrCreateKey(home); err == nil {
		t.Fatal("a key others may read was loaded")
	}
}

// TestOpenRefusesAnotherKey: a later start must bring the first start's key.
func TestOpenRefusesAnotherKey(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	st := mirror.NewMemoryState()
	cfg, _ := p.MirrorConfig(t, mirrortest.MirrorOptions{})
	cfg.State = st
	var err error
	if cfg.Key, err = mirror.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	m, err := mirror.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if cfg.Key, err = mirror.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if _, err := mirror.Open(context.Background(), cfg); err == nil {
		t.Fatal("a later start with another key was accepted")
	}
}
