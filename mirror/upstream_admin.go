package mirror

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/ssh"
)

// validateRegister checks a registration body and returns the mirror's key.
func validateRegister(req *RegisterRequest) (ssh.PublicKey, error) {
	if !validID(req.ID) {
		return nil, errors.New("id must be a lower-case UUID")
	}
	if req.Name == "" || len(req.Name) > 255 || !utf8.ValidString(req.Name) {
		return nil, errors.New("name must be 1 to 255 characters of UTF-8")
	}
	if _, err := parseHTTPSURL(req.BaseURL); err != nil {
		return nil, errors.New("baseUrl must be an https:// URL with a host")
	}
	return parseAuthorizedKey(req.PublicKey)
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
	pub, err := validateRegister(&req)
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
		err = u.db.Update(func(tx *bolt.Tx) error { return useNonce(tx, h.id, h.timestamp, h.nonce, now) })
	}
	if err != nil {
		u.refuse(w, r, err)
		return
	}
	fp := ssh.FingerprintSHA256(pub)
	keyLine := authorizedLine(pub)
	var rec *serverRecord
	status := http.StatusCreated
	code, msg := "", ""
	err = u.db.Update(func(tx *bolt.Tx) error {
		if _, err := getRecord(tx, removedBucket, req.ID); err == nil {
			code, msg = "removed", "this mirror was removed; reset the mirror's home to register it again with a new id"
			return nil
		}
		existing, err := getRecord(tx, serversBucket, req.ID)
		switch {
		case err == nil:
			if existing.BaseURL != req.BaseURL || existing.Fingerprint != fp {
				code, msg = "conflict", "a mirror with this id is registered with a different base URL or key"
				return nil
			}
			rec, status = existing, http.StatusOK
			return nil
		case !errors.Is(err, errNoRecord):
			return err
		}
		if owner := ub(tx, keysBucket).Get([]byte(fp)); owner != nil {
			code, msg = "conflict", "this key is registered by another mirror"
			return nil
		}
		rec = &serverRecord{ID: req.ID, Name: req.Name, BaseURL: req.BaseURL, PublicKey: keyLine,
			Fingerprint: fp, State: StatePending, Created: now, Updated: now}
		if err := ub(tx, keysBucket).Put([]byte(fp), []byte(req.ID)); err != nil {
			return err
		}
		return putRecord(tx, serversBucket, rec)
	})
	if err != nil {
		u.internal(w, r, err)
		return
	}
	if code != "" {
		writeError(w, http.StatusConflict, code, msg)
		return
	}
	if status == http.StatusCreated {
		u.log.Info("mirror registration requested", "mirror", rec.ID, "name", rec.Name, "baseUrl", rec.BaseURL, "key", fp)
	}
	writeJSON(w, status, rec.view())
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
	var recs []*serverRecord
	if err := u.db.View(func(tx *bolt.Tx) (err error) { recs, err = listRecords(tx); return err }); err != nil {
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
	var rec *serverRecord
	err := u.db.View(func(tx *bolt.Tx) (err error) {
		rec, err = getRecord(tx, serversBucket, r.PathValue("id"))
		return err
	})
	if errors.Is(err, errNoRecord) {
		writeError(w, http.StatusNotFound, "not_found", "no such mirror")
		return
	}
	if err != nil {
		u.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec.view())
}

// handleDelete serves DELETE /mirrorServers/{id}: the mirror's key loses SSH and
// API access at once, and its id can never register again.
func (u *Upstream) handleDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var rec *serverRecord
	err := u.db.Update(func(tx *bolt.Tx) (err error) {
		if rec, err = getRecord(tx, serversBucket, id); err != nil {
			return err
		}
		if err := ub(tx, keysBucket).Delete([]byte(rec.Fingerprint)); err != nil {
			return err
		}
		if err := ub(tx, serversBucket).Delete([]byte(id)); err != nil {
			return err
		}
		rec.Updated = u.now()
		return putRecord(tx, removedBucket, rec)
	})
	if errors.Is(err, errNoRecord) {
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

// update applies change to the live record of id in one transaction and replies
// with the new view. change returns a status and message to refuse.
func (u *Upstream) update(w http.ResponseWriter, r *http.Request, change func(rec *serverRecord) (int, string)) (*serverRecord, bool) {
	var rec *serverRecord
	status, msg := 0, ""
	err := u.db.Update(func(tx *bolt.Tx) (err error) {
		if rec, err = getRecord(tx, serversBucket, r.PathValue("id")); err != nil {
			return err
		}
		if status, msg = change(rec); status != 0 {
			return nil
		}
		rec.Updated = u.now()
		return putRecord(tx, serversBucket, rec)
	})
	switch {
	case errors.Is(err, errNoRecord):
		writeError(w, http.StatusNotFound, "not_found", "no such mirror")
		return nil, false
	case err != nil:
		u.internal(w, r, err)
		return nil, false
	case status != 0:
		writeError(w, status, "conflict", msg)
		return nil, false
	}
	writeJSON(w, http.StatusOK, rec.view())
	return rec, true
}

// normaliseProjects validates, sorts and de-duplicates project keys.
func normaliseProjects(keys []string) ([]string, error) {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if !validProjectKey(k) {
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
	var baseURL string
	err = u.db.View(func(tx *bolt.Tx) error {
		rec, err := getRecord(tx, serversBucket, r.PathValue("id"))
		if err == nil {
			baseURL = rec.BaseURL
		}
		return err
	})
	if errors.Is(err, errNoRecord) {
		writeError(w, http.StatusNotFound, "not_found", "no such mirror")
		return
	}
	if err != nil {
		u.internal(w, r, err)
		return
	}
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
	rec, ok := u.update(w, r, func(rec *serverRecord) (int, string) {
		if rec.State != StatePending {
			return http.StatusConflict, "only a PENDING mirror can be accepted; it is " + string(rec.State)
		}
		rec.State, rec.Mode, rec.Projects = StateAccepted, req.MirroringMode, projects
		return 0, ""
	})
	if ok {
		u.log.Info("mirror accepted", "mirror", rec.ID, "mode", rec.Mode, "projects", rec.Projects)
		u.feed.wake()
	}
}

// handleReject serves POST /mirrorServers/{id}/reject.
func (u *Upstream) handleReject(w http.ResponseWriter, r *http.Request) {
	rec, ok := u.update(w, r, func(rec *serverRecord) (int, string) {
		if rec.State != StatePending {
			return http.StatusConflict, "only a PENDING mirror can be rejected; it is " + string(rec.State)
		}
		rec.State = StateRejected
		return 0, ""
	})
	if ok {
		u.log.Info("mirror rejected", "mirror", rec.ID)
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
	if !validProjectKey(key) {
		writeError(w, http.StatusBadRequest, "bad_request", "invalid project key")
		return
	}
	changed := false
	rec, ok := u.update(w, r, func(rec *serverRecord) (int, string) {
		if rec.State != StateAccepted {
			return http.StatusConflict, "projects can be changed only for an ACCEPTED mirror; it is " + string(rec.State)
		}
		if rec.Mode == ModeAllProjects {
			return http.StatusConflict, "the mirror holds all projects; that choice cannot be narrowed or undone"
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
		return 0, ""
	})
	if ok && changed {
		typ := FeedProjectAdded
		if !add {
			typ = FeedProjectRemoved
		}
		if err := u.feed.append(FeedEvent{Type: typ, Project: key, Mirror: rec.ID}); err != nil {
			u.log.Error("mirror feed append failed", "err", err)
		}
	}
}
