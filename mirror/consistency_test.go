package mirror_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// TestClonesDuringSyncAreConsistent clones from a mirror in a loop while it syncs
// a push that moves 3,000 branches: every clone must see all of them old or all
// of them new.
func TestClonesDuringSyncAreConsistent(t *testing.T) {
	refs := 3000
	if testing.Short() {
		refs = 500
	}
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	if err := p.Store.Create(t.Context(), "PROJ", "many"); err != nil {
		t.Fatal(err)
	}
	g := p.Git(t, p.Seeder(t))
	work := filepath.Join(t.TempDir(), "work")
	g.Run("", "init", "-q", work)
	oldID := g.CommitFile(work, "f.txt", "old\n", "old")
	setAll := func(id string) {
		var b strings.Builder
		for i := range refs {
			fmt.Fprintf(&b, "update refs/heads/b%04d %s\n", i, id)
		}
		cmd := g.Command(work, "update-ref", "--stdin")
		cmd.Stdin = strings.NewReader(b.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("update-ref: %v %s", err, out)
		}
	}
	setAll(oldID)
	g.Run(work, "push", "-q", "--atomic", "--force", p.SSHURL("PROJ", "many"), "refs/heads/*:refs/heads/*")

	n := acceptedNode(t, p, "m", mirror.ModeAllProjects)
	p.WaitSynced(t, n, "PROJ/many")
	reader := p.AddUser(t, "reader", []string{"*"}, nil)
	rg := p.Git(t, reader, n)
	newID := g.CommitFile(work, "f.txt", "new\n", "new")
	setAll(newID)

	var stop atomic.Bool
	var oldSeen, newSeen, clones atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				dir := filepath.Join(t.TempDir(), fmt.Sprintf("c%d-%d", w, i))
				out, err := rg.TryRun("", "clone", "-q", "--bare", n.SSHURL("PROJ", "many"), dir)
				if err != nil {
					errs <- fmt.Errorf("clone: %v %s", err, out)
					return
				}
				seen := map[string]int{}
				for _, id := range rg.Refs(dir) {
					seen[id]++
				}
				os.RemoveAll(dir)
				clones.Add(1)
				switch {
				case seen[oldID] > refs && len(seen) == 1:
					oldSeen.Add(1)
				case seen[newID] > refs && len(seen) == 1:
					newSeen.Add(1)
				default:
					errs <- fmt.Errorf("clone %d saw a mix: %d old, %d new, %d ids", clones.Load(), seen[oldID], seen[newID], len(seen))
					return
				}
			}
		}()
	}
	g.Run(work, "push", "-q", "--atomic", "--force", p.SSHURL("PROJ", "many"), "refs/heads/*:refs/heads/*")
	p.WaitSynced(t, n, "PROJ/many")
	target := clones.Load() + 4
	for clones.Load() < target && len(errs) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d clones: %d old, %d new", clones.Load(), oldSeen.Load(), newSeen.Load())
	if newSeen.Load() == 0 {
		t.Fatal("no clone saw the new state")
	}
}
