package mirror

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
)

// blockingRepos is a mesh.Repos whose Fetch blocks until released and counts
// calls and concurrency per repository.
type blockingRepos struct {
	mesh.Repos
	release  chan struct{}
	calls    atomic.Int64
	inFlight atomic.Int64
	maxPar   atomic.Int64
	mu       sync.Mutex
	perRepo  map[string]int
	overlap  bool
}

func (b *blockingRepos) RefsHash(ctx context.Context, project, slug string) (string, error) {
	return "", mesh.ErrNotFound
}

func (b *blockingRepos) Fetch(ctx context.Context, project, slug string, opts mesh.FetchOptions) (mesh.FetchResult, error) {
	key := project + "/" + slug
	b.mu.Lock()
	b.perRepo[key]++
	if b.perRepo[key] > 1 {
		b.overlap = true
	}
	b.mu.Unlock()
	n := b.inFlight.Add(1)
	for {
		m := b.maxPar.Load()
		if n <= m || b.maxPar.CompareAndSwap(m, n) {
			break
		}
	}
	b.calls.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	b.inFlight.Add(-1)
	b.mu.Lock()
	b.perRepo[key]--
	b.mu.Unlock()
	return mesh.FetchResult{}, nil
}

func TestSchedulerCoalescesAndBounds(t *testing.T) {
	repos := &blockingRepos{release: make(chan struct{}), perRepo: map[string]int{}}
	m := &Mirror{cfg: Config{Repos: repos, State: NewMemoryState(), Key: &Key{}, Workers: 2}, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: time.Now,
		reg: Registration{State: StateAccepted, SSHBaseURL: "ssh://127.0.0.1:2", HostKeys: []string{"ssh-ed25519 AAAA"}}}
	s := &syncer{m: m, kick: make(chan struct{}, 1), full: make(chan struct{}, 1), repos: map[string]*repoSync{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range 2 {
		s.wg.Add(1)
		go s.worker()
	}
	defer func() { s.cancel(); s.wg.Wait() }()

	// Five events for one repository while its first fetch runs, and three other
	// repositories: at most two fetches run at once, never two for one repository.
	s.schedule("PROJ", "a", "", false)
	waitFor(t, func() bool { return repos.calls.Load() == 1 })
	for range 5 {
		s.schedule("PROJ", "a", "", false)
	}
	for _, slug := range []string{"b", "c", "d"} {
		s.schedule("PROJ", slug, "", false)
	}
	// Release fetches one at a time until everything is done.
	deadline := time.Now().Add(20 * time.Second)
	for repos.calls.Load() < 5 || repos.inFlight.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("stuck: %d calls, %d in flight", repos.calls.Load(), repos.inFlight.Load())
		}
		select {
		case repos.release <- struct{}{}:
		case <-time.After(10 * time.Millisecond):
		}
	}
	time.Sleep(50 * time.Millisecond) // a sixth fetch, if any, would have started
	if got := repos.calls.Load(); got != 5 {
		t.Fatalf("%d fetches, want 5 (a, its one coalesced follow-up, b, c, d)", got)
	}
	if repos.maxPar.Load() > 2 {
		t.Fatalf("%d fetches ran at once with 2 workers", repos.maxPar.Load())
	}
	if repos.overlap {
		t.Fatal("two fetches of one repository overlapped")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBackoff(t *testing.T) {
	for n := 1; n <= 20; n++ {
		d := backoff(n)
		base := min(500*time.Millisecond<<min(n-1, 8), 2*time.Minute)
		if d < base/2 || d > base {
			t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, base/2, base)
		}
	}
}
