package mirror

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// RepoStatus describes the sync state of one mirrored repository.
type RepoStatus struct {
	Project, Slug string
	// LastSync is when the repository last matched the upstream.
	LastSync time.Time
	// Lag is how long the upstream has had changes the mirror does not; zero when
	// in sync.
	Lag time.Duration
	// LastError is the latest fetch error, empty after a success.
	LastError string
	// Attempts counts failed fetches since the last success.
	Attempts int
}

// InitialProgress reports the first full sync, for a progress bar.
type InitialProgress struct {
	Done       bool  // every repository in scope has been synced once
	ReposTotal int   // repositories to sync
	ReposDone  int   // repositories synced
	BytesDone  int64 // bytes received so far; totals are unknown before a fetch
}

// SyncStatus describes repository synchronisation.
type SyncStatus struct {
	Running bool   // sync is running (the mirror is accepted, host keys trusted)
	Cursor  uint64 // the change-feed position
	Paused  bool   // the upstream is unreachable; sync resumes by itself
	// PausedSince is when the current pause began: the first failed feed
	// read after the last one that succeeded. Zero unless Paused.
	PausedSince time.Time
	Initial     InitialProgress
	Repos       []RepoStatus // sorted by project and slug
	// Lag is the largest repository lag.
	Lag time.Duration
	// LastReconcile is when the last full reconcile completed.
	LastReconcile time.Time
	Fetches       int64 // fetches completed successfully
	BytesReceived int64 // bytes received by all fetches
	Resyncs       int64 // times the feed said the cursor was too old
	// Repairs counts drift a reconcile found after the initial sync: a
	// repository whose refs differed from the upstream's though no event had
	// asked for a fetch (a missed event, a change made behind the mirror's
	// back), each then fetched. Repaired names the latest (at most 10).
	Repairs  int64
	Repaired []string
	// Halted is set when sync stopped on an SSH host key mismatch.
	Halted string
}

// repoSync is the scheduling state of one repository. At most one operation runs
// per repository; requests arriving meanwhile set pending and coalesce into one
// follow-up.
type repoSync struct {
	project, slug string
	queued        bool // in the work queue
	running       bool // a worker holds it
	pending       bool // run again when the current run ends
	remove        bool // the next run deletes instead of fetching
	want          string
	lfsAll        bool // the next fetch checks every reachable LFS object, though the refs match
	behindSince   time.Time
	lastSync      time.Time
	lastErr       string
	attempts      int
	retry         *time.Timer
}

// syncer keeps the mirror's repositories in sync with the upstream while the
// mirror is accepted.
type syncer struct {
	m      *Mirror
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	kick chan struct{} // wakes the workers
	full chan struct{} // asks for a full reconcile

	mu       sync.Mutex
	repos    map[string]*repoSync
	queue    []string
	cursor   uint64
	paused   bool
	pausedAt time.Time // when paused became true
	initial  InitialProgress
	initSet  map[string]bool // repositories of the initial sync not yet done
	lastRec  time.Time
	lastLFS  time.Time // the last reconcile that checked LFS objects
	repairs  int64     // see SyncStatus.Repairs
	repaired []string
	fetches  int64
	bytes    int64
	resyncs  int64
	halted   error // a host key failure: no more fetches
	stopping bool
}

func repoKeyOf(project, slug string) string { return project + "/" + slug }

// startSync starts the syncer unless it runs or there is no storage.
func (m *Mirror) startSync() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sync != nil || m.cfg.Repos == nil || m.closed {
		return
	}
	s := &syncer{m: m, kick: make(chan struct{}, 1), full: make(chan struct{}, 1), repos: map[string]*repoSync{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cursor = m.loadCursor()
	for repo, at := range m.loadRepoStates() {
		s.repos[repo.String()] = &repoSync{project: repo.Project, slug: repo.Slug, lastSync: at}
	}
	m.sync = s
	workers := m.cfg.Workers
	if workers <= 0 {
		workers = 4
	}
	s.wg.Add(2 + workers)
	go s.feedLoop()
	go s.reconcileLoop()
	for range workers {
		go s.worker()
	}
}

// stopSync stops the syncer and waits for it.
func (m *Mirror) stopSync() {
	m.mu.Lock()
	s := m.sync
	m.sync = nil
	m.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	s.stopping = true
	for _, rs := range s.repos {
		if rs.retry != nil {
			rs.retry.Stop()
		}
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

func (s *syncer) status() SyncStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.m.now()
	st := SyncStatus{Running: true, Cursor: s.cursor, Paused: s.paused, Initial: s.initial,
		PausedSince:   s.pausedAt,
		LastReconcile: s.lastRec, Fetches: s.fetches, BytesReceived: s.bytes, Resyncs: s.resyncs,
		Repairs: s.repairs, Repaired: slices.Clone(s.repaired)}
	if s.halted != nil {
		st.Halted = s.halted.Error()
	}
	for _, rs := range s.repos {
		r := RepoStatus{Project: rs.project, Slug: rs.slug, LastSync: rs.lastSync, LastError: rs.lastErr, Attempts: rs.attempts}
		if !rs.behindSince.IsZero() {
			r.Lag = now.Sub(rs.behindSince)
		}
		st.Lag = max(st.Lag, r.Lag)
		st.Repos = append(st.Repos, r)
	}
	slices.SortFunc(st.Repos, func(a, b RepoStatus) int {
		return strings.Compare(repoKeyOf(a.Project, a.Slug), repoKeyOf(b.Project, b.Slug))
	})
	return st
}

// schedule asks for project/slug to be fetched (or removed), coalescing with any
// run in flight. want is the upstream's refs hash when known.
func (s *syncer) schedule(project, slug, want string, remove bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return
	}
	key := repoKeyOf(project, slug)
	rs := s.repos[key]
	if rs == nil {
		rs = &repoSync{project: project, slug: slug}
		s.repos[key] = rs
	}
	rs.remove = remove
	if want != "" {
		rs.want = want
	}
	if rs.behindSince.IsZero() {
		rs.behindSince = s.m.now()
	}
	if rs.retry != nil {
		rs.retry.Stop()
		rs.retry = nil
	}
	s.enqueueLocked(rs)
}

// enqueueLocked queues rs unless it is queued; a running rs is marked pending.
func (s *syncer) enqueueLocked(rs *repoSync) {
	switch {
	case rs.running:
		rs.pending = true
	case !rs.queued:
		rs.queued = true
		s.queue = append(s.queue, repoKeyOf(rs.project, rs.slug))
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// next takes the next repository off the queue, waiting for one.
func (s *syncer) next() (*repoSync, bool) {
	for {
		s.mu.Lock()
		if s.halted == nil && len(s.queue) > 0 {
			key := s.queue[0]
			s.queue = s.queue[1:]
			rs := s.repos[key]
			rs.queued, rs.running = false, true
			more := len(s.queue) > 0
			s.mu.Unlock()
			if more {
				select {
				case s.kick <- struct{}{}:
				default:
				}
			}
			return rs, true
		}
		s.mu.Unlock()
		select {
		case <-s.kick:
		case <-s.ctx.Done():
			return nil, false
		}
	}
}

// worker runs fetches and removals.
func (s *syncer) worker() {
	defer s.wg.Done()
	for {
		rs, ok := s.next()
		if !ok {
			return
		}
		s.run(rs)
	}
}

// fetchURL returns the SSH URL of project/slug on the upstream.
func (m *Mirror) fetchURL(project, slug string) string {
	return gitfleet.CloneURL(m.registration().SSHBaseURL, gitfleet.RepoName{Project: project, Slug: slug})
}

// knownHosts returns known_hosts lines pinning the upstream's host keys.
func (m *Mirror) knownHosts() ([]byte, error) {
	reg := m.registration()
	u, err := url.Parse(reg.SSHBaseURL)
	if err != nil || u.Scheme != "ssh" || u.Hostname() == "" {
		return nil, fmt.Errorf("mirror: bad SSH base URL %q from the upstream", reg.SSHBaseURL)
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	host := knownhosts.Normalize(net.JoinHostPort(u.Hostname(), port))
	var b strings.Builder
	for _, k := range reg.HostKeys {
		b.WriteString(host + " " + k + "\n")
	}
	return []byte(b.String()), nil
}

// run performs one fetch or removal of rs and reschedules as needed.
func (s *syncer) run(rs *repoSync) {
	m := s.m
	s.mu.Lock()
	remove, want := rs.remove, rs.want
	s.mu.Unlock()
	var err error
	if remove {
		err = m.cfg.Repos.Delete(s.ctx, rs.project, rs.slug)
		if errors.Is(err, mesh.ErrNotFound) {
			err = nil
		}
	} else {
		err = s.fetch(rs, want)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rs.running = false
	key := repoKeyOf(rs.project, rs.slug)
	if s.initSet[key] && (err == nil || remove) {
		delete(s.initSet, key)
		s.initial.ReposDone++
		if len(s.initSet) == 0 && s.initial.ReposTotal > 0 {
			s.initial.Done = true
		}
	}
	switch {
	case s.ctx.Err() != nil:
		return
	case err == nil:
		if remove && !rs.pending {
			delete(s.repos, key)
			m.forgetRepo(gitfleet.RepoName{Project: rs.project, Slug: rs.slug})
			return
		}
		if !remove {
			s.fetches++
			rs.lastSync, rs.lastErr, rs.attempts = m.now(), "", 0
			if !rs.pending {
				rs.behindSince = time.Time{}
			}
			m.saveRepo(gitfleet.RepoName{Project: rs.project, Slug: rs.slug}, rs.lastSync)
		}
	default:
		rs.attempts++
		rs.lastErr = err.Error()
		if isHostKeyFailure(err) {
			s.halted = fmt.Errorf("%w: the SSH host key %s presented does not match the key pinned at acceptance: %v",
				ErrHostKeyChanged, m.registration().SSHBaseURL, err)
			m.log.Error("sync stopped", "err", s.halted)
			m.setError(s.halted)
			return
		}
		m.log.Warn("mirror fetch failed", "repo", key, "attempt", rs.attempts, "err", err)
		if !rs.pending {
			d := backoff(rs.attempts)
			project, slug, remove := rs.project, rs.slug, rs.remove
			rs.retry = time.AfterFunc(d, func() { s.schedule(project, slug, "", remove) })
			return
		}
	}
	if rs.pending {
		rs.pending = false
		s.enqueueLocked(rs)
	}
}

// syncRetry is how failed fetches and the change-feed follower retry: 500 ms
// doubling to 2 minutes, each delay shortened at random by up to half.
func syncRetry() gitfleet.Backoff {
	return gitfleet.Backoff{Min: 500 * time.Millisecond, Max: 2 * time.Minute, Jitter: 0.5}
}

// backoff returns the delay before retry n (from 1) of syncRetry.
func backoff(n int) time.Duration { return syncRetry().Delay(n) }

// isHostKeyFailure reports whether a fetch failed on the upstream's host key.
func isHostKeyFailure(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Host key verification failed") || strings.Contains(s, "REMOTE HOST IDENTIFICATION HAS CHANGED")
}

// fetch brings rs up to date unless its refs already hash to want (and no LFS
// check is asked for).
func (s *syncer) fetch(rs *repoSync, want string) error {
	m := s.m
	s.mu.Lock()
	lfsAll := rs.lfsAll
	s.mu.Unlock()
	if want != "" && !lfsAll {
		if have, err := m.cfg.Repos.RefsHash(s.ctx, rs.project, rs.slug); err == nil && have == want {
			return nil
		}
	}
	kh, err := m.knownHosts()
	if err != nil {
		return err
	}
	timeout := m.cfg.FetchTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	var received int64
	res, err := m.cfg.Repos.Fetch(s.ctx, rs.project, rs.slug, mesh.FetchOptions{
		URL:        m.fetchURL(rs.project, rs.slug),
		PrivateKey: m.cfg.Key.PEM,
		KnownHosts: kh,
		Timeout:    timeout,
		LFSAll:     lfsAll,
		Progress: func(p mesh.FetchProgress) {
			s.mu.Lock()
			if p.Bytes > received {
				if !s.initial.Done {
					s.initial.BytesDone += p.Bytes - received
				}
				s.bytes += p.Bytes - received
				received = p.Bytes
			}
			s.mu.Unlock()
			if hook := m.cfg.FetchProgress; hook != nil {
				hook(rs.project, rs.slug, p)
			}
		},
	})
	if err == nil && lfsAll {
		s.mu.Lock()
		rs.lfsAll = false
		s.mu.Unlock()
		if res.LFSObjects > 0 {
			m.log.Warn("repaired missing LFS objects", "repo", repoKeyOf(rs.project, rs.slug), "objects", res.LFSObjects)
		}
	}
	return err
}
