package mirror

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
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
	Initial InitialProgress
	Repos   []RepoStatus // sorted by project and slug
	// Lag is the largest repository lag.
	Lag time.Duration
	// LastReconcile is when the last full reconcile completed.
	LastReconcile time.Time
	Fetches       int64 // fetches completed successfully
	BytesReceived int64 // bytes received by all fetches
	Resyncs       int64 // times the feed said the cursor was too old
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
	initial  InitialProgress
	initSet  map[string]bool // repositories of the initial sync not yet done
	lastRec  time.Time
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
	for key, at := range m.loadRepoStates() {
		p, sl, _ := strings.Cut(key, "/")
		s.repos[key] = &repoSync{project: p, slug: sl, lastSync: at}
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
		LastReconcile: s.lastRec, Fetches: s.fetches, BytesReceived: s.bytes, Resyncs: s.resyncs}
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
	return strings.TrimSuffix(m.registration().SSHBaseURL, "/") + "/" + project + "/" + slug + ".git"
}

// knownHosts returns known_hosts lines pinning the upstream's host keys.
func (m *Mirror) knownHosts() ([]byte, error) {
	reg := m.registration()
	u, err := url.Parse(reg.SSHBaseURL)
	if err != nil || u.Scheme != "ssh" || u.Hostname() == "" {
		return nil, fmt.Errorf("mirror: bad SSH base URL %q from the upstream", reg.SSHBaseURL)
	}
	host := u.Hostname()
	if p := u.Port(); p != "" && p != "22" {
		host = "[" + host + "]:" + p
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
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
			m.forgetRepo(key)
			return
		}
		if !remove {
			s.fetches++
			rs.lastSync, rs.lastErr, rs.attempts = m.now(), "", 0
			if !rs.pending {
				rs.behindSince = time.Time{}
			}
			m.saveRepo(key, rs.lastSync)
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

// backoff returns the delay before retry n (from 1): exponential from 500 ms to
// 2 minutes, with up to 50% jitter.
func backoff(n int) time.Duration {
	d := 500 * time.Millisecond << min(n-1, 8)
	d = min(d, 2*time.Minute)
	return d/2 + rand.N(d/2+1)
}

// isHostKeyFailure reports whether a fetch failed on the upstream's host key.
func isHostKeyFailure(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Host key verification failed") || strings.Contains(s, "REMOTE HOST IDENTIFICATION HAS CHANGED")
}

// fetch brings rs up to date unless its refs already hash to want.
func (s *syncer) fetch(rs *repoSync, want string) error {
	m := s.m
	if want != "" {
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
	_, err = m.cfg.Repos.Fetch(s.ctx, rs.project, rs.slug, mesh.FetchOptions{
		URL:        m.fetchURL(rs.project, rs.slug),
		PrivateKey: m.keyPEM,
		KnownHosts: kh,
		Timeout:    timeout,
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
	return err
}

// feedLoop follows the upstream's change feed: a full reconcile first and after
// every 410, then long polls. An unreachable upstream pauses it with backoff.
func (s *syncer) feedLoop() {
	defer s.wg.Done()
	m := s.m
	wait := m.cfg.EventWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	needReconcile := true
	positioned := false
	failures := 0
	for s.ctx.Err() == nil {
		if needReconcile && !positioned {
			// Learn the feed's position before reconciling, so that a reconcile
			// is not followed at once by a "resync" for a cursor it already covers.
			if err := s.position(); err != nil {
				failures++
				s.pause(err)
				if s.sleep(backoff(failures)) != nil {
					return
				}
				continue
			}
			positioned = true
		}
		if needReconcile {
			if err := s.reconcile(); err != nil {
				failures++
				s.pause(err)
				if s.sleep(backoff(failures)) != nil {
					return
				}
				continue
			}
			needReconcile, positioned = false, false
		}
		s.mu.Lock()
		cursor := s.cursor
		s.mu.Unlock()
		var reply EventsReply
		path := "/events?after=" + strconv.FormatUint(cursor, 10) + "&wait=" + wait.String()
		ctx, cancel := context.WithTimeout(s.ctx, wait+30*time.Second)
		status, err := m.api.call(ctx, http.MethodGet, path, nil, &reply, http.StatusGone)
		cancel()
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
				m.askPoll() // removed or no longer accepted: the state poll decides
			}
			failures++
			s.pause(err)
			if s.sleep(backoff(failures)) != nil {
				return
			}
			continue
		}
		if failures > 0 {
			// Back after an outage: events may have been missed meanwhile.
			needReconcile = true
		}
		failures = 0
		s.resume()
		if status == http.StatusGone {
			m.log.Info("change feed cursor too old; reconciling", "cursor", cursor, "last", reply.Last)
			s.setCursor(reply.Last)
			s.mu.Lock()
			s.resyncs++
			s.mu.Unlock()
			needReconcile = true
			continue
		}
		s.apply(reply.Events)
		s.setCursor(reply.Last)
	}
}

// position asks the feed for events after the cursor without waiting: a 410
// moves the cursor to the feed's end; events are applied.
func (s *syncer) position() error {
	s.mu.Lock()
	cursor := s.cursor
	s.mu.Unlock()
	var reply EventsReply
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	status, err := s.m.api.call(ctx, http.MethodGet, "/events?after="+strconv.FormatUint(cursor, 10)+"&wait=0s", nil, &reply, http.StatusGone)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
			s.m.askPoll()
		}
		return err
	}
	if status == http.StatusGone {
		s.mu.Lock()
		s.resyncs++
		s.mu.Unlock()
	} else {
		s.apply(reply.Events)
	}
	s.setCursor(reply.Last)
	return nil
}

// apply schedules the work the events ask for.
func (s *syncer) apply(events []FeedEvent) {
	reconcile := false
	for _, ev := range events {
		switch ev.Type {
		case FeedRefsChanged, FeedRepoCreated:
			s.schedule(ev.Project, ev.Slug, ev.RefsHash, false)
		case FeedRepoDeleted:
			s.schedule(ev.Project, ev.Slug, "", true)
		case FeedProjectAdded, FeedProjectRemoved:
			reconcile = true
			s.m.askPoll()
		}
	}
	if reconcile {
		s.askReconcile()
	}
}

func (s *syncer) setCursor(c uint64) {
	s.mu.Lock()
	changed := s.cursor != c
	s.cursor = c
	s.mu.Unlock()
	if changed {
		s.m.saveCursor(c)
	}
}

func (s *syncer) pause(err error) {
	s.mu.Lock()
	was := s.paused
	s.paused = true
	s.mu.Unlock()
	if !was {
		s.m.log.Warn("sync paused: upstream unreachable", "err", err)
	}
	s.m.setError(err)
}

func (s *syncer) resume() {
	s.mu.Lock()
	was := s.paused
	s.paused = false
	halted := s.halted
	s.mu.Unlock()
	if was {
		s.m.log.Info("sync resumed")
	}
	if halted == nil {
		s.m.setError(nil)
	}
}

func (s *syncer) sleep(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func (s *syncer) askReconcile() {
	select {
	case s.full <- struct{}{}:
	default:
	}
}

// reconcileLoop runs a full reconcile every SyncInterval and when asked.
func (s *syncer) reconcileLoop() {
	defer s.wg.Done()
	interval := s.m.cfg.SyncInterval
	if interval <= 0 {
		interval = 3 * time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.full:
		case <-s.ctx.Done():
			return
		}
		if err := s.reconcile(); err != nil && s.ctx.Err() == nil {
			s.m.log.Warn("reconcile failed", "err", err)
		}
	}
}

// reconcile compares every repository in scope with the upstream by refs hash,
// schedules fetches where they differ and removals of repositories the upstream
// no longer lists for this mirror.
func (s *syncer) reconcile() error {
	m := s.m
	upstream := map[string]RepoEntry{}
	start := 0
	for {
		var page Page[RepoEntry]
		ctx, cancel := context.WithTimeout(s.ctx, 2*time.Minute)
		_, err := m.api.call(ctx, http.MethodGet, "/repos?start="+strconv.Itoa(start)+"&limit=1000", nil, &page)
		cancel()
		if err != nil {
			return fmt.Errorf("list upstream repositories: %w", err)
		}
		for _, e := range page.Values {
			upstream[repoKeyOf(e.Project, e.Slug)] = e
		}
		if page.IsLastPage || page.NextPageStart == nil || *page.NextPageStart <= start {
			break
		}
		start = *page.NextPageStart
	}
	local, err := m.cfg.Repos.List(s.ctx)
	if err != nil {
		return fmt.Errorf("list local repositories: %w", err)
	}
	var toFetch []RepoEntry
	var toRemove []mesh.RepoInfo
	for _, ri := range local {
		if _, ok := upstream[repoKeyOf(ri.Project, ri.Slug)]; !ok {
			toRemove = append(toRemove, ri)
		}
	}
	for key, e := range upstream {
		have, err := m.cfg.Repos.RefsHash(s.ctx, e.Project, e.Slug)
		if err == nil && have == e.RefsHash {
			s.markInSync(key)
			continue
		}
		toFetch = append(toFetch, e)
	}
	s.mu.Lock()
	if s.initSet == nil && !s.initial.Done {
		s.initSet = map[string]bool{}
		for _, e := range toFetch {
			s.initSet[repoKeyOf(e.Project, e.Slug)] = true
		}
		s.initial.ReposTotal = len(upstream)
		s.initial.ReposDone = len(upstream) - len(toFetch)
		s.initial.Done = len(toFetch) == 0
	}
	s.lastRec = m.now()
	s.mu.Unlock()
	for _, ri := range toRemove {
		m.log.Info("removing repository no longer mirrored", "repo", repoKeyOf(ri.Project, ri.Slug))
		s.schedule(ri.Project, ri.Slug, "", true)
	}
	for _, e := range toFetch {
		s.schedule(e.Project, e.Slug, e.RefsHash, false)
	}
	return nil
}

// markInSync records that key matches the upstream.
func (s *syncer) markInSync(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := s.repos[key]
	if rs == nil {
		p, sl, _ := strings.Cut(key, "/")
		rs = &repoSync{project: p, slug: sl, lastSync: s.m.now()}
		s.repos[key] = rs
	}
	if !rs.running && !rs.queued {
		rs.behindSince = time.Time{}
	}
}
