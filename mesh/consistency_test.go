package mesh_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConsistentReads rewrites 3,000 refs back and forth with atomic pushes while
// ls-remote (protocol v0 and v2), clones and Refs read them, and checks that every
// snapshot is entirely old or entirely new.
func TestConsistentReads(t *testing.T) {
	t.Parallel()
	const nrefs = 3000
	rewrites := 2
	if testing.Short() {
		rewrites = 1
	}
	s := openStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	g := newGit(t, startGitServer(t, s))
	if err := s.Create(ctx, "PROJ", "many"); err != nil {
		t.Fatal(err)
	}
	url := repoURL("PROJ", "many")
	// Two clients: one holds every r/* ref at commit a, the other at commit b.
	// Pushing from one then the other rewrites all the refs in one transaction.
	root := t.TempDir()
	wa, wb := filepath.Join(root, "a"), filepath.Join(root, "b")
	g.Run("", "init", "-q", wa)
	a := g.CommitFile(wa, "f", "a", "a")
	b := g.CommitFile(wa, "f", "b", "b")
	g.Run("", "clone", "-q", "--bare", wa, wb)
	for dir, id := range map[string]string{wa: a, wb: b} {
		var in strings.Builder
		for i := 0; i < nrefs; i++ {
			fmt.Fprintf(&in, "update refs/heads/r/%04d %s\n", i, id)
		}
		cmd := g.Command(dir, "update-ref", "--stdin")
		cmd.Stdin = strings.NewReader(in.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("update-ref: %v\n%s", err, out)
		}
		g.Run(dir, "pack-refs", "--all")
	}
	setAll := func(id string) {
		from := wa
		if id == b {
			from = wb
		}
		g.Run(from, "push", "-q", "--atomic", url, "+refs/heads/r/*:refs/heads/r/*", "+main:main")
	}
	setAll(a)

	// check classifies a snapshot (ref -> id) of the r/* refs.
	var checked, mixed atomic.Int64
	check := func(who string, refs map[string]string) {
		na, nb := 0, 0
		for name, id := range refs {
			if !strings.HasPrefix(name, "refs/heads/r/") {
				continue
			}
			switch id {
			case a:
				na++
			case b:
				nb++
			}
		}
		checked.Add(1)
		if !(na == nrefs && nb == 0 || nb == nrefs && na == 0) {
			mixed.Add(1)
			t.Errorf("%s saw a mixed snapshot: %d old, %d new of %d", who, na, nb, nrefs)
		}
	}
	parseLsRemote := func(out string) map[string]string {
		refs := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if id, name, ok := strings.Cut(l, "\t"); ok {
				refs[name] = id
			}
		}
		return refs
	}

	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	reader := func(name string, read func(i int) (map[string]string, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; rctx.Err() == nil; i++ {
				refs, err := read(i)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				check(name, refs)
			}
		}()
	}
	for _, v := range []string{"0", "2"} {
		reader("ls-remote v"+v, func(int) (map[string]string, error) {
			out, err := g.TryRun("", "-c", "protocol.version="+v, "ls-remote", url, "refs/heads/r/*")
			return parseLsRemote(out), err
		})
	}
	cloneRoot := t.TempDir()
	reader("clone", func(i int) (map[string]string, error) {
		dir := filepath.Join(cloneRoot, fmt.Sprint(i))
		if _, err := g.TryRun("", "clone", "-q", "--bare", url, dir); err != nil {
			return nil, err
		}
		return g.Refs(dir), nil
	})
	reader("Store.Refs", func(int) (map[string]string, error) { return s.Refs(ctx, "PROJ", "many") })
	// The same repository read behind the store's back: git's files backend lets such
	// a reader see a mix, which shows the test can tell.
	dir := filepath.Join(s.Root(), "PROJ", "many.git")
	var direct, directMixed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for rctx.Err() == nil {
			out, err := g.TryRun(dir, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/r/")
			if err != nil {
				continue
			}
			na := strings.Count(out, a)
			direct.Add(1)
			if na != 0 && na != nrefs {
				directMixed.Add(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	for i := 0; i < rewrites; i++ {
		t0 := time.Now()
		if i%2 == 0 {
			setAll(b)
		} else {
			setAll(a)
		}
		t.Logf("rewrite %d took %v", i, time.Since(t0))
	}
	stop()
	wg.Wait()
	t.Logf("%d snapshots through the store, %d mixed; %d direct for-each-ref snapshots, %d mixed",
		checked.Load(), mixed.Load(), direct.Load(), directMixed.Load())
	if checked.Load() < 8 {
		t.Errorf("only %d snapshots were taken", checked.Load())
	}
	refs, err := s.Refs(ctx, "PROJ", "many")
	if err != nil {
		t.Fatal(err)
	}
	check("final", refs)
	g.Fsck(dir)
}
