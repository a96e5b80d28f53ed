package mirror_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// BenchmarkPushToVisible pushes 50 commits to the primary with real git over SSH
// and measures, for each, the time from the push's completion to the commit
// being on the mirror (the mirror store's ref-change event). It reports p50 and
// p99 in milliseconds.
//
//	go test -run '^$' -bench PushToVisible -benchtime 1x ./mirror/
func BenchmarkPushToVisible(b *testing.B) {
	const pushes = 50
	p := mirrortest.StartPrimary(b, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(b, "PROJ", "app", testutil.SmallRepo)
	n := p.StartNode(b, mirrortest.NodeOptions{Name: "m"})
	mirrortest.WaitState(b, n.Mirror, mirror.StatePending)
	p.Accept(b, n.Mirror.ID(), mirror.ModeAllProjects)
	p.WaitSynced(b, n, "PROJ/app")
	g := p.Git(b, p.Seeder(b))
	work := filepath.Join(b.TempDir(), "app")
	g.Run("", "clone", "-q", p.SSHURL("PROJ", "app"), work)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, err := n.Store.Subscribe(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		for i := range pushes {
			id := g.CommitFile(work, "f.txt", fmt.Sprintf("push %d\n", i), "push")
			g.Run(work, "push", "-q", "origin", "HEAD:main")
			pushed := time.Now()
			waitForRef(b, events, "refs/heads/main", id)
			lat = append(lat, time.Since(pushed))
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(len(lat)), "pushes")
}

// waitForRef waits for an event that sets ref to id.
func waitForRef(b *testing.B, events <-chan mesh.Event, ref, id string) {
	timeout := time.After(time.Minute)
	for {
		select {
		case ev := <-events:
			for _, u := range ev.Updates {
				if u.Ref == ref && u.New == id {
					return
				}
			}
		case <-timeout:
			b.Fatalf("%s never reached %s on the mirror", ref, id)
		}
	}
}

// BenchmarkInitialSync compares a new mirror's initial sync of 20 Preset40k
// repositories (4 fetch workers) with `git clone --mirror` of the same 20 from
// OpenSSH's sshd, 4 at a time.
//
//	go test -run '^$' -bench InitialSync -benchtime 1x ./mirror/
func BenchmarkInitialSync(b *testing.B) {
	const repos, workers = 20, 4
	p := mirrortest.StartPrimary(b, mirrortest.PrimaryOptions{Storage: true})
	var names []string
	for i := range repos {
		slug := fmt.Sprintf("r%02d", i)
		p.Seed(b, "PROJ", slug, testutil.Preset40k)
		names = append(names, "PROJ/"+slug)
	}
	b.Run("gitfleet", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			n := p.StartNode(b, mirrortest.NodeOptions{Name: "m", Configure: func(c *mirror.Config) { c.Workers = workers }})
			mirrortest.WaitState(b, n.Mirror, mirror.StatePending)
			b.StartTimer()
			p.Accept(b, n.Mirror.ID(), mirror.ModeAllProjects)
			// Wait on the mirror's own (in-memory) status: reading 20 repositories'
			// refs every few milliseconds would take CPU from the sync it times.
			mirrortest.WaitStatusFor(b, n.Mirror, "initial sync done", 20*time.Minute, func(s mirror.Status) bool {
				return s.Sync.Initial.Done && s.Sync.Initial.ReposDone == repos
			})
			b.StopTimer()
			if ok, why := p.InSync(n, names...); !ok {
				b.Fatalf("initial sync reported done, but %s", why)
			}
			n.Stop()
			b.StartTimer()
		}
	})
	b.Run("openssh-clone-mirror", func(b *testing.B) {
		key := testutil.GenerateKey(b, testutil.Ed25519)
		sshd := testutil.StartSshd(b, []*testutil.Key{key})
		g := testutil.NewGit(b)
		g.SetSSH(key, sshd.KnownHosts(b))
		for range b.N {
			dest := b.TempDir()
			var wg sync.WaitGroup
			work := make(chan string)
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for name := range work {
						proj, slug, _ := splitRepo(name)
						src := mirrortest.RepoDir(p.Home.Repos, proj, slug)
						if _, err := g.TryRun("", "clone", "-q", "--mirror", sshd.URL(src), filepath.Join(dest, slug+".git")); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			for _, name := range names {
				work <- name
			}
			close(work)
			wg.Wait()
		}
	})
}

func splitRepo(name string) (string, string, bool) {
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return name[:i], name[i+1:], true
		}
	}
	return "", "", false
}

// BenchmarkMirrorLFSSync measures a new mirror's initial sync of a repository
// holding 100 Git LFS objects of 1 MB (pushed with git-lfs), until the refs
// and every object are on the mirror, against `git lfs fetch --all` of the same
// objects by a client from the primary over the same SSH server. Run:
//
//	go test -run '^$' -bench MirrorLFSSync -benchtime 3x ./mirror/
func BenchmarkMirrorLFSSync(b *testing.B) {
	const objects, size = 100, 1 << 20
	p := mirrortest.StartPrimary(b, mirrortest.PrimaryOptions{Storage: true})
	dev := p.AddUser(b, "dev", []string{"*"}, []string{"*"})
	if err := p.Store.Create(context.Background(), "PROJ", "media"); err != nil {
		b.Fatal(err)
	}
	g := p.Git(b, dev)
	g.InstallLFS(b)
	work := filepath.Join(b.TempDir(), "w")
	g.Run("", "clone", "-q", p.SSHURL("PROJ", "media"), work)
	g.Run(work, "lfs", "track", "*.bin")
	var oids []string
	for i := range objects {
		data := make([]byte, size)
		rand.Read(data)
		if err := os.WriteFile(filepath.Join(work, fmt.Sprintf("o%03d.bin", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(data)
		oids = append(oids, hex.EncodeToString(sum[:]))
	}
	g.Run(work, "add", ".")
	g.Run(work, "commit", "-q", "-m", "objects")
	g.Run(work, "push", "-q", "origin", "HEAD:main")
	var mirrorTotal, clientTotal time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		n := p.StartNode(b, mirrortest.NodeOptions{Name: fmt.Sprintf("m%d", i)})
		mirrortest.WaitState(b, n.Mirror, mirror.StatePending)
		p.Accept(b, n.Mirror.ID(), mirror.ModeAllProjects)
		p.WaitSynced(b, n, "PROJ/media")
		mirrorTotal += time.Since(t0)
		repo := mirrortest.RepoDir(n.Store.Root(), "PROJ", "media")
		for _, oid := range oids {
			if _, err := os.Stat(filepath.Join(repo, "lfs", "objects", oid[:2], oid[2:4], oid)); err != nil {
				b.Fatalf("object %s missing on the mirror: %v", oid, err)
			}
		}
		n.Stop()

		c := filepath.Join(b.TempDir(), "c")
		g.SetEnv("GIT_LFS_SKIP_SMUDGE", "1")
		g.Run("", "clone", "-q", p.SSHURL("PROJ", "media"), c)
		g.SetEnv("GIT_LFS_SKIP_SMUDGE", "0")
		t1 := time.Now()
		g.Run(c, "lfs", "fetch", "--all", "origin")
		clientTotal += time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(mirrorTotal.Seconds()/float64(b.N), "mirror-sync-s")
	b.ReportMetric(clientTotal.Seconds()/float64(b.N), "client-lfs-fetch-s")
}

// BenchmarkFreshnessCheck measures what the read-your-writes check costs a
// read on a mirror that is in sync: `git ls-remote` (a new SSH connection
// each, the smallest read) from two mirrors of the same primary, one with the
// check and one without (FreshnessWait < 0), interleaved. It reports
// milliseconds per ls-remote for each and the difference. Run:
//
//	go test -run '^$' -bench FreshnessCheck -benchtime 30x ./mirror/
func BenchmarkFreshnessCheck(b *testing.B) {
	p := mirrortest.StartPrimary(b, mirrortest.PrimaryOptions{Storage: true})
	p.Seed(b, "PROJ", "app", testutil.SmallRepo)
	dev := p.AddUser(b, "dev", []string{"*"}, []string{"*"})
	start := func(name string, wait time.Duration) *mirrortest.Node {
		n := p.StartNode(b, mirrortest.NodeOptions{Name: name, Configure: func(c *mirror.Config) { c.FreshnessWait = wait }})
		mirrortest.WaitState(b, n.Mirror, mirror.StatePending)
		p.Accept(b, n.Mirror.ID(), mirror.ModeAllProjects)
		p.WaitSynced(b, n, "PROJ/app")
		return n
	}
	with, without := start("with", 0), start("without", -1)
	g := p.Git(b, dev, with, without)
	// Warm the read-permission caches.
	g.Run("", "ls-remote", with.SSHURL("PROJ", "app"))
	g.Run("", "ls-remote", without.SSHURL("PROJ", "app"))
	var on, off time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		g.Run("", "ls-remote", with.SSHURL("PROJ", "app"))
		t1 := time.Now()
		g.Run("", "ls-remote", without.SSHURL("PROJ", "app"))
		on += t1.Sub(t0)
		off += time.Since(t1)
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(on), "check-ms/op")
	b.ReportMetric(ms(off), "nocheck-ms/op")
	b.ReportMetric(ms(on)-ms(off), "added-ms/op")
	if st := with.Mirror.FreshnessStats(); st.Fresh == 0 {
		b.Fatalf("the check did not run: %+v", st)
	}
}
