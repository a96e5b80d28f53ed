package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
)

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
				if syncRetry().Wait(s.ctx, failures) != nil {
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
				if syncRetry().Wait(s.ctx, failures) != nil {
					return
				}
				continue
			}
			needReconcile, positioned = false, false
		}
		s.mu.Lock()
		cursor := s.cursor
		initial := s.initial
		s.mu.Unlock()
		var reply EventsReply
		// The initial sync's progress rides along, for the upstream's list of a
		// farm's nodes.
		path := "/events?after=" + strconv.FormatUint(cursor, 10) + "&wait=" + wait.String() +
			"&synced=" + strconv.Itoa(initial.ReposDone) + "&total=" + strconv.Itoa(initial.ReposTotal) +
			"&initialDone=" + strconv.FormatBool(initial.Done)
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
			if syncRetry().Wait(s.ctx, failures) != nil {
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
	if !was {
		s.pausedAt = s.m.now()
	}
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
	s.pausedAt = time.Time{}
	halted := s.halted
	s.mu.Unlock()
	if was {
		s.m.log.Info("sync resumed")
	}
	if halted == nil {
		s.m.setError(nil)
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
	lfsEvery := m.cfg.LFSCheckInterval
	if lfsEvery == 0 {
		lfsEvery = time.Hour
	}
	s.mu.Lock()
	checkLFS := lfsEvery > 0 && m.now().Sub(s.lastLFS) >= lfsEvery
	if checkLFS {
		s.lastLFS = m.now()
	}
	s.mu.Unlock()
	var toFetch, toCheck []RepoEntry
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
			if checkLFS {
				toCheck = append(toCheck, e)
			}
			continue
		}
		toFetch = append(toFetch, e)
	}
	s.mu.Lock()
	wasDone := s.initial.Done
	if s.initSet == nil && !s.initial.Done {
		s.initSet = map[string]bool{}
		for _, e := range toFetch {
			s.initSet[repoKeyOf(e.Project, e.Slug)] = true
		}
		s.initial.ReposTotal = len(upstream)
		s.initial.ReposDone = len(upstream) - len(toFetch)
		s.initial.Done = len(toFetch) == 0
	}
	if wasDone {
		// Drift: out of sync though no event had asked for a fetch.
		for _, e := range toFetch {
			key := repoKeyOf(e.Project, e.Slug)
			if rs := s.repos[key]; rs != nil && (rs.queued || rs.running || !rs.behindSince.IsZero()) {
				continue
			}
			s.repairs++
			s.repaired = append(s.repaired, key)
			if len(s.repaired) > 10 {
				s.repaired = s.repaired[1:]
			}
			m.log.Warn("repository differs from the upstream with no event to explain it: repairing", "repo", key)
		}
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
	for _, e := range toCheck {
		s.mu.Lock()
		if rs := s.repos[repoKeyOf(e.Project, e.Slug)]; rs != nil {
			rs.lfsAll = true
		}
		s.mu.Unlock()
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
