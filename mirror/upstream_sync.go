package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
	"golang.org/x/crypto/ssh"
)

// cloneURL returns the SSH clone URL of project/slug.
func (u *Upstream) cloneURL(project, slug string) string {
	return gitfleet.CloneURL(u.cfg.SSHBaseURL, gitfleet.RepoName{Project: project, Slug: slug})
}

// handleRepos serves the signed GET /repos?start=N&limit=N: the repositories in
// the mirror's projects with their refs hashes.
func (u *Upstream) handleRepos(w http.ResponseWriter, r *http.Request, rec *MirrorRecord, _ []byte) {
	start, limit, ok := pageParams(w, r)
	if !ok {
		return
	}
	entries := []RepoEntry{}
	if u.cfg.Repos != nil {
		all, err := u.cfg.Repos.List(r.Context())
		if err != nil {
			u.internal(w, r, err)
			return
		}
		var mine []mesh.RepoInfo
		for _, ri := range all {
			if rec.canRead(ri.Project) {
				mine = append(mine, ri)
			}
		}
		page := makePage(mine, start, limit)
		for _, ri := range page.Values {
			h, err := u.cfg.Repos.RefsHash(r.Context(), ri.Project, ri.Slug)
			if errors.Is(err, mesh.ErrNotFound) {
				continue // deleted meanwhile; the feed reports it
			}
			if err != nil {
				u.internal(w, r, err)
				return
			}
			entries = append(entries, RepoEntry{Project: ri.Project, Slug: ri.Slug, SSHURL: u.cloneURL(ri.Project, ri.Slug), RefsHash: h})
		}
		writeJSON(w, http.StatusOK, Page[RepoEntry]{Values: entries, Size: len(entries), IsLastPage: page.IsLastPage,
			Start: start, Limit: limit, NextPageStart: page.NextPageStart})
		return
	}
	writeJSON(w, http.StatusOK, makePage(entries, start, limit))
}

// handleEvents serves the signed long poll GET /events?after=N&wait=30s.
func (u *Upstream) handleEvents(w http.ResponseWriter, r *http.Request, rec *MirrorRecord, _ []byte) {
	q := r.URL.Query()
	after, err := strconv.ParseUint(q.Get("after"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "after must be a non-negative integer")
		return
	}
	synced, _ := strconv.Atoi(q.Get("synced"))
	total, _ := strconv.Atoi(q.Get("total"))
	u.contacts.polled(rec.ID, after, InitialProgressView{Done: q.Get("initialDone") == "true", ReposDone: max(synced, 0), ReposTotal: max(total, 0)})
	wait := time.Duration(0)
	if s := q.Get("wait"); s != "" {
		if wait, err = time.ParseDuration(s); err != nil || wait < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "wait must be a duration such as 30s")
			return
		}
	}
	maxWait := u.cfg.MaxWait
	if maxWait <= 0 {
		maxWait = time.Minute
	}
	timer := time.NewTimer(min(wait, maxWait))
	defer timer.Stop()
	id := rec.ID
	for {
		// Re-read the record each round: projects change and mirrors are removed.
		cur, err := u.liveRecord(r.Context(), id)
		if err != nil || cur.State != StateAccepted {
			u.refuse(w, r, ErrUnknownMirror)
			return
		}
		keep := func(ev FeedEvent) bool {
			if ev.Type == FeedProjectAdded || ev.Type == FeedProjectRemoved {
				return ev.Mirror == "" || ev.Mirror == id
			}
			return cur.canRead(ev.Project)
		}
		events, last, changed, resync := u.feed.since(after, keep)
		if resync {
			writeJSON(w, http.StatusGone, EventsReply{Events: []FeedEvent{}, Last: last, Resync: true})
			return
		}
		if len(events) > 0 {
			writeJSON(w, http.StatusOK, EventsReply{Events: events, Last: last})
			return
		}
		select {
		case <-changed:
			if u.ctx.Err() == nil {
				continue
			}
		case <-timer.C:
		case <-r.Context().Done():
		}
		writeJSON(w, http.StatusOK, EventsReply{Events: []FeedEvent{}, Last: last})
		return
	}
}

// liveRecord reads the live record of id; a removed mirror is not found.
func (u *Upstream) liveRecord(ctx context.Context, id string) (*MirrorRecord, error) {
	rec, removed, err := u.state.Mirror(ctx, id)
	if err == nil && removed {
		err = fmt.Errorf("mirror %q was removed: %w", id, gitfleet.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// validateAuth checks an authenticate body and returns the user's key.
func validateAuth(req *AuthRequest) (ssh.PublicKey, error) {
	if gitfleet.CheckProjectKey(req.Project) != nil || req.Slug == "" || len(req.Slug) > gitfleet.MaxNameLen {
		return nil, errors.New("project and slug are required")
	}
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
	if err != nil || len(rest) > 0 {
		return nil, errors.New("publicKey must be one authorized_keys line")
	}
	return pub, nil
}

// handleAuthenticate serves the signed POST /authenticate: may the user owning
// a key read a repository that this mirror holds.
func (u *Upstream) handleAuthenticate(w http.ResponseWriter, r *http.Request, rec *MirrorRecord, body []byte) {
	var req AuthRequest
	if err := decodeJSON(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	pub, err := validateAuth(&req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !rec.canRead(req.Project) || u.cfg.ReadAccess == nil {
		writeJSON(w, http.StatusOK, AuthReply{})
		return
	}
	user, allowed, err := u.cfg.ReadAccess(r.Context(), pub, req.Project, req.Slug)
	if err != nil {
		u.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, AuthReply{Allowed: allowed, User: user})
}

// Publish adds an event to the change feed, for changes the primary knows of
// that its mesh.Repos does not report (Seq is assigned).
func (u *Upstream) Publish(ctx context.Context, ev FeedEvent) error {
	return u.feed.append(ctx, ev)
}

// follow turns repository events into feed events until the subscription ends.
func (u *Upstream) follow(events <-chan mesh.Event) {
	defer u.wg.Done()
	for ev := range events {
		var fe FeedEvent
		switch ev.Type {
		case mesh.EventCreated:
			fe = FeedEvent{Type: FeedRepoCreated, Project: ev.Project, Slug: ev.Slug}
		case mesh.EventDeleted:
			fe = FeedEvent{Type: FeedRepoDeleted, Project: ev.Project, Slug: ev.Slug}
		case mesh.EventRefsChanged:
			fe = FeedEvent{Type: FeedRefsChanged, Project: ev.Project, Slug: ev.Slug}
		case mesh.EventGap:
			u.log.Warn("repository events were missed; mirrors will reconcile")
			if err := u.feed.reset(u.ctx); err != nil {
				u.log.Error("mirror feed reset failed", "err", err)
			}
			continue
		default:
			continue
		}
		if fe.Type != FeedRepoDeleted {
			ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
			h, err := u.cfg.Repos.RefsHash(ctx, ev.Project, ev.Slug)
			cancel()
			if err == nil {
				fe.RefsHash = h
			} else if !errors.Is(err, mesh.ErrNotFound) {
				u.log.Warn("refs hash for feed event failed", "repo", ev.Project+"/"+ev.Slug, "err", err)
			}
		}
		if err := u.feed.append(u.ctx, fe); err != nil {
			u.log.Error("mirror feed append failed", "err", err)
		}
	}
}
