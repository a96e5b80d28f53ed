package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// stateImpls are the implementations of state held to its contract.
var stateImpls = []struct {
	name string
	open func(t *testing.T) state
}{
	{"bolt", func(t *testing.T) state {
		db, err := openDB(filepath.Join(t.TempDir(), "gitfleet.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return newBoltState(db)
	}},
	{"memory", func(t *testing.T) state { return newMemoryState() }},
}

var stateTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// mustErr fails t unless err wraps want and its message contains msg.
func mustErr(t *testing.T, what string, err, want error, msg string) {
	t.Helper()
	if !errors.Is(err, want) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("%s: %v, want %v containing %q", what, err, want, msg)
	}
}

func mustNil(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// stateCases are the contract's cases; each runs on a fresh state.
var stateCases = []struct {
	name string
	run  func(t *testing.T, ctx context.Context, st state)
}{
	{"projects", func(t *testing.T, ctx context.Context, st state) {
		if ps, err := st.Projects(ctx); err != nil || len(ps) != 0 {
			t.Fatalf("projects of an empty state: %v %v", ps, err)
		}
		_, err := st.Project(ctx, "A")
		mustErr(t, "missing project", err, errNotFound, "project A does not exist")
		mustNil(t, "create B", st.CreateProject(ctx, project{Key: "B", Name: "Bee", Created: stateTime}))
		mustNil(t, "create A", st.CreateProject(ctx, project{Key: "A", Name: "Ay", Created: stateTime}))
		p, err := st.Project(ctx, "B")
		if err != nil || p.Key != "B" || p.Name != "Bee" || !p.Created.Equal(stateTime) {
			t.Fatalf("project B: %+v %v", p, err)
		}
		ps, err := st.Projects(ctx)
		if err != nil || len(ps) != 2 || ps[0].Key != "A" || ps[1].Key != "B" {
			t.Fatalf("projects: %+v %v", ps, err)
		}
	}},
	{"duplicate project", func(t *testing.T, ctx context.Context, st state) {
		mustNil(t, "create", st.CreateProject(ctx, project{Key: "A", Name: "first"}))
		mustErr(t, "duplicate", st.CreateProject(ctx, project{Key: "A", Name: "second"}), errConflict, "project A already exists")
		if p, err := st.Project(ctx, "A"); err != nil || p.Name != "first" {
			t.Fatalf("after a refused duplicate: %+v %v", p, err)
		}
		if ps, err := st.Projects(ctx); err != nil || len(ps) != 1 {
			t.Fatalf("projects: %+v %v", ps, err)
		}
	}},
	{"repositories", func(t *testing.T, ctx context.Context, st state) {
		mustErr(t, "record in a missing project", st.CreateRepo(ctx, repository{Project: "A", Slug: "x"}), errNotFound, "project A does not exist")
		if rs, err := st.Repos(ctx, ""); err != nil || len(rs) != 0 {
			t.Fatalf("a refused record was kept: %+v %v", rs, err)
		}
		for _, k := range []string{"AB", "A"} {
			mustNil(t, "create project", st.CreateProject(ctx, project{Key: k}))
		}
		for _, r := range []repository{{Project: "AB", Slug: "z"}, {Project: "A", Slug: "y.b"}, {Project: "A", Slug: "y"}, {Project: "A", Slug: "x-1", Name: "X 1", Created: stateTime}} {
			mustNil(t, "record "+r.Project+"/"+r.Slug, st.CreateRepo(ctx, r))
		}
		mustErr(t, "duplicate record", st.CreateRepo(ctx, repository{Project: "A", Slug: "y", Name: "other"}), errConflict, "repository A/y already exists")
		r, err := st.Repo(ctx, "A", "x-1")
		if err != nil || r.Name != "X 1" || !r.Created.Equal(stateTime) {
			t.Fatalf("repo A/x-1: %+v %v", r, err)
		}
		_, err = st.Repo(ctx, "A", "z")
		mustErr(t, "missing repo", err, errNotFound, "repository A/z does not exist")
		names := func(rs []repository) string {
			var s []string
			for _, r := range rs {
				s = append(s, r.Project+"/"+r.Slug)
			}
			return strings.Join(s, " ")
		}
		if rs, err := st.Repos(ctx, "A"); err != nil || names(rs) != "A/x-1 A/y A/y.b" {
			t.Fatalf("repos of A: %q %v", names(rs), err)
		}
		if rs, err := st.Repos(ctx, ""); err != nil || names(rs) != "A/x-1 A/y A/y.b AB/z" {
			t.Fatalf("every repo: %q %v", names(rs), err)
		}
		if rs, err := st.Repos(ctx, "C"); err != nil || len(rs) != 0 {
			t.Fatalf("repos of C: %q %v", names(rs), err)
		}
		mustNil(t, "delete", st.DeleteRepo(ctx, "A", "y"))
		_, err = st.Repo(ctx, "A", "y")
		mustErr(t, "deleted repo", err, errNotFound, "repository A/y does not exist")
		if rs, err := st.Repos(ctx, "A"); err != nil || names(rs) != "A/x-1 A/y.b" {
			t.Fatalf("repos of A after a delete: %q %v", names(rs), err)
		}
	}},
	{"require signed pushes", func(t *testing.T, ctx context.Context, st state) {
		mustErr(t, "no record", st.SetRequireSignedPush(ctx, "A", "x", true), errNotFound, "repository A/x does not exist")
		mustNil(t, "create project", st.CreateProject(ctx, project{Key: "A"}))
		mustNil(t, "record", st.CreateRepo(ctx, repository{Project: "A", Slug: "x", Name: "X", Created: stateTime}))
		mustNil(t, "record", st.CreateRepo(ctx, repository{Project: "A", Slug: "y"}))
		if r, err := st.Repo(ctx, "A", "x"); err != nil || r.RequireSignedPush {
			t.Fatalf("a new record requires signed pushes: %+v %v", r, err)
		}
		mustNil(t, "require", st.SetRequireSignedPush(ctx, "A", "x", true))
		r, err := st.Repo(ctx, "A", "x")
		if err != nil || !r.RequireSignedPush || r.Name != "X" || !r.Created.Equal(stateTime) {
			t.Fatalf("after require: %+v %v", r, err)
		}
		if r, err := st.Repo(ctx, "A", "y"); err != nil || r.RequireSignedPush {
			t.Fatalf("another record changed: %+v %v", r, err)
		}
		mustNil(t, "lift", st.SetRequireSignedPush(ctx, "A", "x", false))
		if r, err := st.Repo(ctx, "A", "x"); err != nil || r.RequireSignedPush {
			t.Fatalf("after lifting: %+v %v", r, err)
		}
	}},
	{"delete a missing repository", func(t *testing.T, ctx context.Context, st state) {
		mustErr(t, "no project", st.DeleteRepo(ctx, "A", "x"), errNotFound, "repository A/x does not exist")
		mustNil(t, "create project", st.CreateProject(ctx, project{Key: "A"}))
		mustErr(t, "no record", st.DeleteRepo(ctx, "A", "x"), errNotFound, "repository A/x does not exist")
		mustNil(t, "record", st.CreateRepo(ctx, repository{Project: "A", Slug: "x"}))
		mustNil(t, "delete", st.DeleteRepo(ctx, "A", "x"))
		mustErr(t, "delete twice", st.DeleteRepo(ctx, "A", "x"), errNotFound, "repository A/x does not exist")
	}},
	{"user keys", func(t *testing.T, ctx context.Context, st state) {
		k1, err := st.AddKey(ctx, sshKey{ID: 99, Fingerprint: "SHA256:one", Text: "ssh-ed25519 AAA1", Label: "laptop", Algorithm: "ssh-ed25519", User: "alice", Created: stateTime})
		if err != nil || k1.ID == 0 || k1.ID == 99 || k1.User != "alice" {
			t.Fatalf("add: %+v %v", k1, err)
		}
		k2, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:two", User: "bob"})
		if err != nil || k2.ID <= k1.ID {
			t.Fatalf("add a second key: %+v %v (first id %d)", k2, err, k1.ID)
		}
		k3, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:three", User: "alice"})
		if err != nil || k3.ID <= k2.ID {
			t.Fatalf("add a third key: %+v %v", k3, err)
		}
		got, err := st.KeyByFingerprint(ctx, "SHA256:one")
		if err != nil || got != k1 {
			t.Fatalf("by fingerprint: %+v %v, want %+v", got, err, k1)
		}
		_, err = st.KeyByFingerprint(ctx, "SHA256:none")
		mustErr(t, "unknown fingerprint", err, errNotFound, "SHA256:none")
		ks, err := st.UserKeys(ctx, "alice")
		if err != nil || len(ks) != 2 || ks[0].ID != k1.ID || ks[1].ID != k3.ID {
			t.Fatalf("alice's keys: %+v %v", ks, err)
		}
		if ks, err := st.UserKeys(ctx, "carol"); err != nil || len(ks) != 0 {
			t.Fatalf("carol's keys: %+v %v", ks, err)
		}
		mustNil(t, "delete", st.DeleteKey(ctx, k1.ID))
		_, err = st.KeyByFingerprint(ctx, "SHA256:one")
		mustErr(t, "deleted key", err, errNotFound, "SHA256:one")
		mustErr(t, "delete twice", st.DeleteKey(ctx, k1.ID), errNotFound, "does not exist")
		mustErr(t, "delete an unknown id", st.DeleteKey(ctx, 12345), errNotFound, "key 12345 does not exist")
		// The fingerprint is free again; ids are never reused.
		k4, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:one", User: "bob"})
		if err != nil || k4.ID <= k3.ID {
			t.Fatalf("add a freed fingerprint: %+v %v", k4, err)
		}
	}},
	{"duplicate fingerprint across users", func(t *testing.T, ctx context.Context, st state) {
		if _, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:k", User: "alice"}); err != nil {
			t.Fatal(err)
		}
		_, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:k", User: "bob"})
		mustErr(t, "same key for another user", err, errConflict, "this key is already registered (SHA256:k)")
		_, err = st.AddKey(ctx, sshKey{Fingerprint: "SHA256:k", User: "alice"})
		mustErr(t, "same key twice", err, errConflict, "already registered")
		mustNil(t, "project", st.CreateProject(ctx, project{Key: "A"}))
		mustNil(t, "repo", st.CreateRepo(ctx, repository{Project: "A", Slug: "x"}))
		_, err = st.AddKey(ctx, sshKey{Fingerprint: "SHA256:k", Project: "A", Slug: "x", Permission: permRepoRead})
		mustErr(t, "same key as an access key", err, errConflict, "already registered")
		if ks, err := st.UserKeys(ctx, "bob"); err != nil || len(ks) != 0 {
			t.Fatalf("a refused key was stored: %+v %v", ks, err)
		}
		if k, err := st.KeyByFingerprint(ctx, "SHA256:k"); err != nil || k.User != "alice" {
			t.Fatalf("the key's holder changed: %+v %v", k, err)
		}
	}},
	{"access keys", func(t *testing.T, ctx context.Context, st state) {
		_, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:a", Project: "A", Slug: "x", Permission: permRepoWrite})
		mustErr(t, "access key of a missing repository", err, errNotFound, "repository A/x does not exist")
		if _, err := st.KeyByFingerprint(ctx, "SHA256:a"); !errors.Is(err, errNotFound) {
			t.Fatalf("a refused access key was stored: %v", err)
		}
		mustNil(t, "project", st.CreateProject(ctx, project{Key: "A"}))
		for _, slug := range []string{"x", "y"} {
			mustNil(t, "repo", st.CreateRepo(ctx, repository{Project: "A", Slug: slug}))
		}
		ax, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:a", Project: "A", Slug: "x", Permission: permRepoWrite})
		if err != nil || ax.ID == 0 {
			t.Fatalf("access key: %+v %v", ax, err)
		}
		if _, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:b", Project: "A", Slug: "y", Permission: permRepoRead}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:u", User: "alice"}); err != nil {
			t.Fatal(err)
		}
		if k, err := st.KeyByFingerprint(ctx, "SHA256:a"); err != nil || k != ax {
			t.Fatalf("access key by fingerprint: %+v %v", k, err)
		}
		// Deleting a repository deletes its access keys, and only those.
		mustNil(t, "delete repo", st.DeleteRepo(ctx, "A", "x"))
		if _, err := st.KeyByFingerprint(ctx, "SHA256:a"); !errors.Is(err, errNotFound) {
			t.Fatalf("the deleted repository's access key: %v", err)
		}
		mustErr(t, "its id", st.DeleteKey(ctx, ax.ID), errNotFound, "does not exist")
		for _, fp := range []string{"SHA256:b", "SHA256:u"} {
			if _, err := st.KeyByFingerprint(ctx, fp); err != nil {
				t.Fatalf("key %s: %v", fp, err)
			}
		}
		// Its fingerprint is free again.
		if _, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:a", User: "bob"}); err != nil {
			t.Fatalf("a freed access key's fingerprint: %v", err)
		}
	}},
	{"permissions", func(t *testing.T, ctx context.Context, st state) {
		mustErr(t, "permission on a missing project", st.SetPermission(ctx, "A", "alice", permProjectRead), errNotFound, "project A does not exist")
		if p, err := st.Permission(ctx, "A", "alice"); err != nil || p != "" {
			t.Fatalf("a refused permission was stored: %q %v", p, err)
		}
		mustNil(t, "project", st.CreateProject(ctx, project{Key: "A"}))
		mustNil(t, "project", st.CreateProject(ctx, project{Key: "B"}))
		mustNil(t, "set", st.SetPermission(ctx, "A", "alice", permProjectRead))
		mustNil(t, "replace", st.SetPermission(ctx, "A", "alice", permProjectAdmin))
		mustNil(t, "set bob", st.SetPermission(ctx, "B", "bob", permProjectWrite))
		for _, c := range []struct{ key, user, want string }{
			{"A", "alice", permProjectAdmin}, {"B", "bob", permProjectWrite}, {"A", "bob", ""}, {"B", "alice", ""}, {"C", "alice", ""},
		} {
			if p, err := st.Permission(ctx, c.key, c.user); err != nil || p != c.want {
				t.Errorf("permission of %s on %s: %q %v, want %q", c.user, c.key, p, err, c.want)
			}
		}
	}},
	{"settings", func(t *testing.T, ctx context.Context, st state) {
		if u, h, err := st.Admin(ctx); err != nil || u != "" || len(h) != 0 {
			t.Fatalf("before setup: %q %q %v", u, h, err)
		}
		hash := []byte("$2a$10$hash")
		mustNil(t, "set", st.SetAdmin(ctx, "admin", hash))
		hash[0] = 'X' // the state keeps its own copy
		u, h, err := st.Admin(ctx)
		if err != nil || u != "admin" || string(h) != "$2a$10$hash" {
			t.Fatalf("admin: %q %q %v", u, h, err)
		}
		h[0] = 'Y' // and returns the caller's
		if _, h, _ := st.Admin(ctx); string(h) != "$2a$10$hash" {
			t.Fatalf("the stored hash changed to %q", h)
		}
		mustNil(t, "replace", st.SetAdmin(ctx, "root", []byte("h2")))
		if u, h, err := st.Admin(ctx); err != nil || u != "root" || string(h) != "h2" {
			t.Fatalf("replaced admin: %q %q %v", u, h, err)
		}
	}},
	{"one fingerprint under concurrent adds", func(t *testing.T, ctx context.Context, st state) {
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, errs[i] = st.AddKey(ctx, sshKey{Fingerprint: "SHA256:race", User: "user" + string(rune('a'+i))})
			})
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, errConflict):
				t.Fatalf("concurrent add: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d concurrent adds of one key succeeded, want 1", ok)
		}
	}},
}

// TestStateContract holds every implementation of state to its contract.
func TestStateContract(t *testing.T) {
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			for _, c := range stateCases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, context.Background(), impl.open(t))
				})
			}
		})
	}
}

// TestBoltStateReadsExistingHome checks that the bbolt state reads a database
// written with the example's buckets and encodings (as homes made before the
// state interface hold them), and writes the same encodings.
func TestBoltStateReadsExistingHome(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gitfleet.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	id7 := []byte{0, 0, 0, 0, 0, 0, 0, 7}
	err = db.Update(func(tx *bolt.Tx) error {
		put := func(bucket, key, value string) {
			b, err := tx.CreateBucketIfNotExists([]byte(bucket))
			if err == nil {
				err = b.Put([]byte(key), []byte(value))
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		put("projects", "PROJ", `{"key":"PROJ","name":"My project","created":"2026-01-02T03:04:05Z"}`)
		put("repos", "PROJ/my-repo", `{"project":"PROJ","slug":"my-repo","name":"my-repo","created":"2026-01-02T03:04:05Z"}`)
		put("keys", string(id7), `{"id":7,"text":"ssh-ed25519 AAAA","fingerprint":"SHA256:fp","algorithmType":"ssh-ed25519","user":"alice","created":"2026-01-02T03:04:05Z"}`)
		put("keys-by-fp", "SHA256:fp", string(id7))
		put("permissions", "PROJ\x00alice", "PROJECT_WRITE")
		put("settings", "admin.username", "admin")
		put("settings", "admin.passwordHash", "$2a$10$hash")
		b := tx.Bucket([]byte("keys"))
		return b.SetSequence(7)
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = openDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := newBoltState(db)
	if p, err := st.Project(ctx, "PROJ"); err != nil || p.Name != "My project" || !p.Created.Equal(stateTime) {
		t.Fatalf("project: %+v %v", p, err)
	}
	if r, err := st.Repo(ctx, "PROJ", "my-repo"); err != nil || r.Name != "my-repo" {
		t.Fatalf("repo: %+v %v", r, err)
	}
	if k, err := st.KeyByFingerprint(ctx, "SHA256:fp"); err != nil || k.ID != 7 || k.User != "alice" || k.Algorithm != "ssh-ed25519" {
		t.Fatalf("key: %+v %v", k, err)
	}
	if p, err := st.Permission(ctx, "PROJ", "alice"); err != nil || p != permProjectWrite {
		t.Fatalf("permission: %q %v", p, err)
	}
	if u, h, err := st.Admin(ctx); err != nil || u != "admin" || string(h) != "$2a$10$hash" {
		t.Fatalf("admin: %q %q %v", u, h, err)
	}
	k, err := st.AddKey(ctx, sshKey{Fingerprint: "SHA256:new", User: "bob"})
	if err != nil || k.ID != 8 {
		t.Fatalf("a new key after id 7: %+v %v", k, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket([]byte("keys-by-fp")).Get([]byte("SHA256:new")); string(got) != string([]byte{0, 0, 0, 0, 0, 0, 0, 8}) {
			t.Errorf("index entry %x, want 8 as 8 bytes big-endian", got)
		}
		if tx.Bucket([]byte("keys")).Get([]byte{0, 0, 0, 0, 0, 0, 0, 8}) == nil {
			t.Error("no key record under id 8")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
