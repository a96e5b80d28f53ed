package mirror_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// TestMirrorCarriesLFS: with Debian's git-lfs, LFS files pushed to the primary
// (before the mirror exists, and after) are on the mirror before the refs that
// point to them, and a clone from the mirror gets them from the mirror itself:
// its store holds every object, by SHA-256, and the clone succeeds after the
// primary's copies are removed; an object lost on the mirror is fetched again
// by the periodic check.
func TestMirrorCarriesLFS(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	dev := p.AddUser(t, "dev", []string{"*"}, []string{"*"})
	if err := p.Store.Create(t.Context(), "PROJ", "media"); err != nil {
		t.Fatal(err)
	}
	g := p.Git(t, dev)
	g.InstallLFS(t)
	work := t.TempDir()
	w := filepath.Join(work, "w")
	g.Run(work, "clone", "-q", p.SSHURL("PROJ", "media"), "w")
	g.Run(w, "lfs", "track", "*.bin")
	first := make([]byte, 512<<10)
	rand.Read(first)
	if err := os.WriteFile(filepath.Join(w, "first.bin"), first, 0o644); err != nil {
		t.Fatal(err)
	}
	g.Run(w, "add", ".gitattributes", "first.bin")
	g.Run(w, "commit", "-q", "-m", "first")
	g.Run(w, "push", "-q", "origin", "HEAD:main")

	n := p.StartNode(t, mirrortest.NodeOptions{Name: "lfs", Configure: func(c *mirror.Config) {
		fastSync(c)
		c.SyncInterval = 300 * time.Millisecond
		c.LFSCheckInterval = time.Millisecond // every reconcile checks the LFS objects
	}})
	mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
	p.Accept(t, n.Mirror.ID(), mirror.ModeAllProjects)
	mirrortest.WaitState(t, n.Mirror, mirror.StateAccepted)
	p.WaitSynced(t, n, "PROJ/media")

	second := make([]byte, 256<<10)
	rand.Read(second)
	if err := os.WriteFile(filepath.Join(w, "second.bin"), second, 0o644); err != nil {
		t.Fatal(err)
	}
	g.Run(w, "add", "second.bin")
	g.Run(w, "commit", "-q", "-m", "second")
	g.Run(w, "push", "-q", "origin", "HEAD:main")
	p.WaitSynced(t, n, "PROJ/media")

	mirrorRepo := mirrortest.RepoDir(n.Store.Root(), "PROJ", "media")
	for _, data := range [][]byte{first, second} {
		sum := sha256.Sum256(data)
		oid := hex.EncodeToString(sum[:])
		if got, err := os.ReadFile(filepath.Join(mirrorRepo, "lfs", "objects", oid[:2], oid[2:4], oid)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("object %s on the mirror: %d bytes, %v", oid, len(got), err)
		}
	}
	// An object lost on the mirror comes back with the periodic check, though
	// no ref changes.
	sum := sha256.Sum256(first)
	oid := hex.EncodeToString(sum[:])
	lost := filepath.Join(mirrorRepo, "lfs", "objects", oid[:2], oid[2:4], oid)
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if got, err := os.ReadFile(lost); err == nil && bytes.Equal(got, first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mirror did not repair a lost LFS object")
		}
	}

	// A clone from the mirror gets the objects from the mirror: the primary's
	// copies are gone (the primary still answers the mirror's permission checks).
	if err := os.RemoveAll(filepath.Join(mirrortest.RepoDir(p.Store.Root(), "PROJ", "media"), "lfs", "objects")); err != nil {
		t.Fatal(err)
	}
	rg := p.Git(t, dev, n)
	rg.InstallLFS(t)
	c := filepath.Join(work, "c")
	rg.Run(work, "clone", "-q", n.SSHURL("PROJ", "media"), "c")
	for name, data := range map[string][]byte{"first.bin": first, "second.bin": second} {
		if got, err := os.ReadFile(filepath.Join(c, name)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s in a clone from the mirror: %d bytes, %v", name, len(got), err)
		}
	}
}
