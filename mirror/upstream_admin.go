package mirror

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

// validateRegister checks a registration body and returns the mirror's key.
func validateRegister(req *RegisterRequest, policy gitfleet.KeyPolicy) (ssh.PublicKey, error) {
	if !validID(req.ID) {
		return nil, errors.New("id must be a lower-case UUID")
	}
	if req.Name == "" || len(req.Name) > 255 || !utf8.ValidString(req.Name) {
		return nil, errors.New("name must be 1 to 255 characters of UTF-8")
	}
	if _, err := parseHTTPSURL(req.BaseURL); err != nil {
		return nil, errors.New("baseUrl must be an https:// URL with a host")
	}
	return parseAuthorizedKey(req.PublicKey, policy)
}

// handleRegister serves POST /mirrorServers. The request must be signed with the
// key it registers, which proves the mirror holds it.
func (u *Upstream) handleRegister(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	var req RegisterRequest
	if err := decodeJSON(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	pub, err := validateRegister(&req, u.cfg.KeyPolicy)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	h, err := parseSignedHeaders(r)
	if err == nil && h.id != req.ID {
		err = errors.New("signing mirror differs from the registered id")
	}
	now := u.now()
	if err == nil {
		err = h.verify(pub, r.Method, r.RequestURI, body, now)
	}
	if err == nil {
		err = u.useNonce(r.Context(), h, now)
	}
	if err != nil {
		u.refuse(w, r, err)
		return
	}
	fp := ssh.FingerprintSHA256(pub)
	keyLine := authorizedLine(pub)
	from := clientHost(r)
	rec := &MirrorRecord{ID: req.ID, Name: req.Name, BaseURL: req.BaseURL, PublicKey: keyLine,
		Fingerprint: fp, State: StatePending, Created: now, Updated: now, From: from}
	if req.JoinToken == "" {
		u.regMu.Lock()
		defer u.regMu.Unlock() // until the record is stored, so concurrent registrations count each other
		if wait, msg, err := u.admitRegistration(r.Context(), req.ID, from, now); err != nil {
			u.internal(w, r, err)
			return
		} else if msg != "" {
			u.log.Warn("mirror registration refused: too many pending", "from", from, "name", req.Name, "reason", msg)
			w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
			writeError(w, http.StatusTooManyRequests, "too_many_pending", msg)
			return
		}
	}
	if req.JoinToken != "" {
		// A node joining a farm: accepted at once, with the farm's projects.
		farm, err := u.farmForToken(r.Context(), req.JoinToken)
		if err != nil {
			u.internal(w, r, err)
			return
		}
		if farm == nil {
			u.log.Warn("farm join refused: no farm holds the token", "mirror", req.ID, "name", req.Name, "key", fp)
			writeError(w, http.StatusForbidden, "join_token", errJoinToken.Error())
			return
		}
		rec.State, rec.Mode, rec.Projects, rec.Farm = StateAccepted, farm.Mode, slices.Clone(farm.Projects), farm.ID
	}
	status := http.StatusCreated
	existing, err := u.state.AddMirror(r.Context(), rec)
	switch {
	case errors.Is(err, ErrMirrorRemoved):
		writeError(w, http.StatusConflict, "removed", "this mirror was removed; reset the mirror's home to register it again with a new id")
		return
	case errors.Is(err, ErrMirrorExists) && existing != nil:
		if existing.BaseURL != req.BaseURL || existing.Fingerprint != fp {
			writeError(w, http.StatusConflict, "conflict", "a mirror with this id is registered with a different base URL or key")
			return
		}
		rec, status = existing, http.StatusOK
	case errors.Is(err, ErrKeyInUse):
		writeError(w, http.StatusConflict, "conflict", "this key is registered by another mirror")
		return
	case err != nil:
		u.internal(w, r, err)
		return
	}
	if status == http.StatusCreated && rec.Farm != "" {
		u.log.Info("mirror node joined a farm", "mirror", rec.ID, "farm", rec.Farm, "name", rec.Name, "baseUrl", rec.BaseURL, "key", fp)
		u.feed.wake()
	} else if status == http.StatusCreated {
		u.log.Info("mirror registration requested", "mirror", rec.ID, "name", rec.Name, "baseUrl", rec.BaseURL, "key", fp)
	}
	writeJSON(w, status, rec.view())
}

// Defaults of the bounds on registrations (see UpstreamConfig).
const (
	DefaultMaxPendingPerAddress = 5
	DefaultMaxPending           = 100
	DefaultPendingExpiry        = 7 * 24 * time.Hour
	DefaultRemovedRetention     = 30 * 24 * time.Hour
)

// admitRegistration decides whether a new registration from address from may
// be stored: a known id (a repeated registration) always may. It first removes
// pending registrations older than PendingExpiry and, at most hourly, purges
// removed records older than RemovedRetention. A refusal returns how long to
// wait and why. The caller holds regMu.
func (u *Upstream) admitRegistration(ctx context.Context, id, from string, now time.Time) (time.Duration, string, error) {
	if _, _, err := u.state.Mirror(ctx, id); err == nil {
		return 0, "", nil
	} else if !isNotFound(err) {
		return 0, "", err
	}
	expiry := u.cfg.PendingExpiry
	if expiry <= 0 {
		expiry = DefaultPendingExpiry
	}
	retention := u.cfg.RemovedRetention
	if retention <= 0 {
		retention = DefaultRemovedRetention
	}
	if now.Sub(u.lastPurge) >= time.Hour {
		u.lastPurge = now
		if n, err := u.state.PurgeRemoved(ctx, now.Add(-retention)); err != nil {
			return 0, "", err
		} else if n > 0 {
			u.log.Info("removed mirror records purged", "count", n, "retention", retention)
		}
	}
	all, err := u.state.Mirrors(ctx)
	if err != nil {
		return 0, "", err
	}
	pending, fromAddr := 0, 0
	for _, rec := range all {
		if rec.State != StatePending {
			continue
		}
		if now.Sub(rec.Created) > expiry {
			if _, err := u.state.RemoveMirror(ctx, rec.ID, now); err == nil {
				u.log.Info("pending mirror registration expired", "mirror", rec.ID, "name", rec.Name, "created", rec.Created)
				u.feed.wake()
			}
			continue
		}
		pending++
		if rec.From == from {
			fromAddr++
		}
	}
	perAddr, total := u.cfg.MaxPendingPerAddress, u.cfg.MaxPending
	if perAddr == 0 {
		perAddr = DefaultMaxPendingPerAddress
	}
	if total == 0 {
		total = DefaultMaxPending
	}
	switch {
	case perAddr > 0 && fromAddr >= perAddr:
		return time.Hour, fmt.Sprintf("%d registrations from this address are waiting for approval already; ask the upstream's administrator to approve or reject them", fromAddr), nil
	case total > 0 && pending >= total:
		return time.Hour, fmt.Sprintf("%d registrations are waiting for approval already; try again once the upstream's administrator has dealt with them", pending), nil
	}
	return 0, "", nil
}

// handlePurgeRemoved serves DELETE /mirrorServers/removed: forget every
// removed mirror's record now (their ids may then register again).
func (u *Upstream) handlePurgeRemoved(w http.ResponseWriter, r *http.Request) {
	n, err := u.state.PurgeRemoved(r.Context(), u.now().Add(time.Nanosecond))
	if err != nil {
		u.internal(w, r, err)
		return
	}
	u.log.Info("removed mirror records purged by the administrator", "count", n)
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
}

// clientHost is the address a request came from, without its port.
func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// internal answers an unexpected failure with 500 and logs it.
func (u *Upstream) internal(w http.ResponseWriter, r *http.Request, err error) {
	u.log.Error("mirror API failure", "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error")
}

// handleList serves GET /mirrorServers?start=N&limit=N.
func (u *Upstream) handleList(w http.ResponseWriter, r *http.Request) {
	start, limit, ok := pageParams(w, r)
	if !ok {
		return
	}
	recs, err := u.state.Mirrors(r.Context())
	if err != nil {
		u.internal(w, r, err)
		return
	}
	views := make([]MirrorServer, 0, len(recs))
	for _, rec := range recs {
		views = append(views, rec.view())
	}
	writeJSON(w, http.StatusOK, makePage(views, start, limit))
}

// pageParams reads start and limit; limit defaults to 25 and is capped at 1000.
func pageParams(w http.ResponseWriter, r *http.Request) (start, limit int, ok bool) {
	start, limit = 0, 25
	q := r.URL.Query()
	var err error
	if s := q.Get("start"); s != "" {
		if start, err = strconv.Atoi(s); err != nil || start < 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "start must be a non-negative integer")
			return 0, 0, false
		}
	}
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			writeError(w, http.StatusBadRequest, "bad_request", "limit must be a positive integer")
			return 0, 0, false
		}
	}
	return start, min(limit, 1000), true
}

// makePage cuts one page out of all.
func makePage[T any](all []T, start, limit int) Page[T] {
	p := Page[T]{Start: start, Limit: limit, Values: []T{}}
	if start < len(all) {
		end := min(start+limit, len(all))
		p.Values = all[start:end]
	}
	p.Size = len(p.Values)
	p.IsLastPage = start+p.Size >= len(all)
	if !p.IsLastPage {
		next := start + p.Size
		p.NextPageStart = &next
	}
	return p
}

// handleGet serves GET /mirrorServers/{id}.
func (u *Upstream) handleGet(w http.ResponseWriter, r *http.Request) {
	if rec, ok := u.liveOrReply(w, r, r.PathValue("id")); ok {
		writeJSON(w, http.StatusOK, rec.view())
	}
}

// liveOrReply returns the live record of id, or answers 404 (no such mirror)
// or 500 and reports false.
func (u *Upstream) liveOrReply(w http.ResponseWriter, r *http.Request, id string) (*MirrorRecord, bool) {
	rec, err := u.liveRecord(r.Context(), id)
	switch {
	case isNotFound(err):
		writeError(w, http.StatusNotFound, "not_found", "no such mirror")
		return nil, false
	case err != nil:
		u.internal(w, r, err)
		return nil, false
	}
	return rec, true
}

// handleDelete serves DELETE /mirrorServers/{id}: the mirror's key loses SSH and
// API access at once, and its id can never register again.
func (u *Upstream) handleDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, err := u.state.RemoveMirror(r.Context(), id, u.now())
	if isNotFound(err) {
		writeError(w, http.StatusNotFound, "not_found", "no such mirror")
		return
	}
	if err != nil {
		u.internal(w, r, err)
		return
	}
	u.log.Info("mirror removed", "mirror", id, "name", rec.Name)
	u.feed.wake()
	w.WriteHeader(http.StatusNoContent)
}

// refusal is a change that update refuses, with the status to answer.
type refusal struct {
	status int
	msg    string
}

func (e *refusal) Error() string { return e.msg }

// update applies change to the live record of id in one transaction and replies
// with the new view. change returns a non-nil refusal to refuse.
func (u *Upstream) update(w http.ResponseWriter, r *http.Request, change func(rec *MirrorRecord) *refusal) (*MirrorRecord, bool) {
	rec, err := u.state.UpdateMirror(r.Context(), r.PathValue("id"), func(rec *MirrorRecord) error {
		if ref := change(rec); ref != nil {
			return ref
		}
		rec.Updated = u.now()
		return nil
	})
	if !u.updated(w, r, err) {
		return nil, false
	}
	writeJSON(w, http.StatusOK, rec.view())
	return rec, true
}

// updated reports whether an UpdateMirror succeeded; if not, it has answered
// 404 (no such mirror), the refusal's status, or 500.
func (u *Upstream) updated(w http.ResponseWriter, r *http.Request, err error) bool {
	var ref *refusal
	switch {
	case isNotFound(err):
		writeError(w, http.StatusNotFound, "not_found", "no such mirror")
	case errors.As(err, &ref):
		writeError(w, ref.status, "conflict", ref.msg)
	case err != nil:
		u.internal(w, r, err)
	default:
		return true
	}
	return false
}

// normaliseProjects validates, sorts and de-duplicates project keys.
func normaliseProjects(keys []string) ([]string, error) {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if gitfleet.CheckProjectKey(k) != nil {
			return nil, errors.New("invalid project key " + strconv.Quote(k))
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// handleAccept serves POST /mirrorServers/{id}/accept. The mirror's base URL must
// first answer over HTTPS with a certificate the primary trusts.
func (u *Upstream) handleAccept(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	var req AcceptRequest
	if err := decodeJSON(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	var projects []string
	switch req.MirroringMode {
	case ModeAllProjects:
		if len(req.Projects) > 0 {
			writeError(w, http.StatusBadRequest, "bad_request", "projects must be empty for ALL_PROJECTS")
			return
		}
	case ModeSelectedProjects:
		if projects, err = normaliseProjects(req.Projects); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	default:
		writeError(w, http.StatusBadRequest, "bad_request", "mirroringMode must be ALL_PROJECTS or SELECTED_PROJECTS")
		return
	}
	rec, ok := u.liveOrReply(w, r, r.PathValue("id"))
	if !ok {
		return
	}
	baseURL := rec.BaseURL
	timeout := u.cfg.AcceptCheckTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	err = CheckHTTPS(ctx, baseURL, u.cfg.RootCAs, u.now)
	cancel()
	if err != nil {
		u.log.Warn("mirror not accepted: base URL check failed", "mirror", r.PathValue("id"), "err", err)
		writeError(w, http.StatusUnprocessableEntity, "base_url_check", "the mirror's base URL failed the HTTPS check: "+err.Error())
		return
	}
	rec, ok = u.update(w, r, func(rec *MirrorRecord) *refusal {
		if rec.State != StatePending {
			return &refusal{http.StatusConflict, "only a PENDING mirror can be accepted; it is " + string(rec.State)}
		}
		rec.State, rec.Mode, rec.Projects = StateAccepted, req.MirroringMode, projects
		return nil
	})
	if ok {
		u.log.Info("mirror accepted", "mirror", rec.ID, "mode", rec.Mode, "projects", rec.Projects)
		u.feed.wake()
	}
}

// handleReject serves POST /mirrorServers/{id}/reject.
func (u *Upstream) handleReject(w http.ResponseWriter, r *http.Request) {
	rec, ok := u.update(w, r, func(rec *MirrorRecord) *refusal {
		if rec.State != StatePending {
			return &refusal{http.StatusConflict, "only a PENDING mirror can be rejected; it is " + string(rec.State)}
		}
		rec.State = StateRejected
		return nil
	})
	if ok {
		u.log.Info("mirror rejected", "mirror", rec.ID)
		u.feed.wake()
	}
}

// handleAllProjects serves POST /mirrorServers/{id}/all-projects: an accepted
// mirror of selected projects is given every project, now and later. Like
// Bitbucket's "mirror all projects", it cannot be narrowed or undone.
func (u *Upstream) handleAllProjects(w http.ResponseWriter, r *http.Request) {
	rec, ok := u.update(w, r, func(rec *MirrorRecord) *refusal {
		if rec.State != StateAccepted {
			return &refusal{http.StatusConflict, "only an ACCEPTED mirror can be given all projects; it is " + string(rec.State)}
		}
		if rec.Farm != "" {
			return &refusal{http.StatusConflict, "a farm node follows its farm's first mirror " + rec.Farm + "; change that one"}
		}
		rec.Mode, rec.Projects = ModeAllProjects, nil
		return nil
	})
	if ok {
		u.log.Info("mirror given all projects", "mirror", rec.ID)
		u.feed.wake()
	}
}

// handleAddProject serves PUT /mirrorServers/{id}/projects/{key}.
func (u *Upstream) handleAddProject(w http.ResponseWriter, r *http.Request) {
	u.changeProject(w, r, true)
}

// handleRemoveProject serves DELETE /mirrorServers/{id}/projects/{key}.
func (u *Upstream) handleRemoveProject(w http.ResponseWriter, r *http.Request) {
	u.changeProject(w, r, false)
}

func (u *Upstream) changeProject(w http.ResponseWriter, r *http.Request, add bool) {
	key := r.PathValue("key")
	if gitfleet.CheckProjectKey(key) != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid project key")
		return
	}
	changed := false
	rec, ok := u.update(w, r, func(rec *MirrorRecord) *refusal {
		changed = false // a store may run the change again
		if rec.State != StateAccepted {
			return &refusal{http.StatusConflict, "projects can be changed only for an ACCEPTED mirror; it is " + string(rec.State)}
		}
		if rec.Mode == ModeAllProjects {
			return &refusal{http.StatusConflict, "the mirror holds all projects; that choice cannot be narrowed or undone"}
		}
		i, found := slices.BinarySearch(rec.Projects, key)
		switch {
		case add && !found:
			rec.Projects = slices.Insert(rec.Projects, i, key)
			changed = true
		case !add && found:
			rec.Projects = slices.Delete(rec.Projects, i, i+1)
			changed = true
		}
		return nil
	})
	if ok && changed {
		u.followFarm(r.Context(), rec)
		typ := FeedProjectAdded
		if !add {
			typ = FeedProjectRemoved
		}
		if err := u.feed.append(r.Context(), FeedEvent{Type: typ, Project: key, Mirror: rec.ID}); err != nil {
			u.log.Error("mirror feed append failed", "err", err)
		}
	}
}
