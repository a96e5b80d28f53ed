package mirror

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"
)

// DefaultJoinTokenLifetime is how long a farm's join token is valid unless the
// administrator asks otherwise.
const DefaultJoinTokenLifetime = 24 * time.Hour

// joinTokenPrefix starts every join token, so that one is recognisable in a
// configuration file.
const joinTokenPrefix = "gfjoin_"

// JoinTokenRequest is the optional body of POST /mirrorServers/{id}/join-token.
type JoinTokenRequest struct {
	// ValidFor is how long the token lets nodes join, such as "2h"; empty
	// means DefaultJoinTokenLifetime. At most 30 days.
	ValidFor string `json:"validFor,omitempty"`
}

// JoinToken is the reply to POST /mirrorServers/{id}/join-token: a secret that
// lets further mirror nodes join the farm of mirror id, without an
// administrator approving each one, until Expires. Only its hash is stored;
// asking again replaces it.
type JoinToken struct {
	Farm    string    `json:"farm"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
}

// FarmNode is one node of a farm as GET /mirrorServers/{id}/nodes lists it.
type FarmNode struct {
	MirrorServer
	// LastContact is when the node last made a signed request (its change feed
	// polls run every few seconds); zero when it has not since the upstream
	// started.
	LastContact time.Time `json:"lastContact,omitempty"`
	// EventsBehind is how many change feed events the node had not yet
	// received at its last poll: 0 when it is up to date; -1 when unknown.
	EventsBehind int64 `json:"eventsBehind"`
	// InitialSync is the node's initial sync progress as of its last poll.
	InitialSync *InitialProgressView `json:"initialSync,omitempty"`
}

// InitialProgressView is a node's initial sync progress as the node reports it
// with each change feed poll.
type InitialProgressView struct {
	Done       bool `json:"done"`
	ReposDone  int  `json:"repositoriesDone"`
	ReposTotal int  `json:"repositoriesTotal"`
}

// contacts remembers each mirror's last signed request and feed position.
type contacts struct {
	mu   sync.Mutex
	seen map[string]contact
}

type contact struct {
	at      time.Time
	cursor  uint64
	polled  bool
	initial InitialProgressView
}

func (c *contacts) saw(id string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]contact{}
	}
	ct := c.seen[id]
	ct.at = at
	c.seen[id] = ct
}

func (c *contacts) polled(id string, cursor uint64, initial InitialProgressView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]contact{}
	}
	ct := c.seen[id]
	ct.cursor, ct.polled, ct.initial = cursor, true, initial
	c.seen[id] = ct
}

func (c *contacts) get(id string) contact {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[id]
}

func hashJoinToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// handleJoinToken serves POST /mirrorServers/{id}/join-token: a new join token
// for the farm of an accepted mirror (a farm of one until others join).
func (u *Upstream) handleJoinToken(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	var req JoinTokenRequest
	if len(body) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
	}
	valid := DefaultJoinTokenLifetime
	if req.ValidFor != "" {
		if valid, err = time.ParseDuration(req.ValidFor); err != nil || valid <= 0 || valid > 30*24*time.Hour {
			writeError(w, http.StatusBadRequest, "bad_request", "validFor must be a duration from 1s to 720h, such as 2h")
			return
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	token := joinTokenPrefix + hex.EncodeToString(secret)
	expires := u.now().Add(valid).UTC().Truncate(time.Second)
	rec, err := u.state.UpdateMirror(r.Context(), r.PathValue("id"), func(rec *MirrorRecord) error {
		switch {
		case rec.Farm != "":
			return &refusal{http.StatusConflict, "this mirror is a node of farm " + rec.Farm + ": ask for the farm's token there"}
		case rec.State != StateAccepted:
			return &refusal{http.StatusConflict, "a farm forms around an ACCEPTED mirror; this one is " + string(rec.State)}
		}
		rec.JoinTokenHash, rec.JoinTokenExpires, rec.Updated = hashJoinToken(token), expires, u.now()
		return nil
	})
	if !u.updated(w, r, err) {
		return
	}
	u.log.Info("farm join token issued", "farm", rec.ID, "expires", expires)
	writeJSON(w, http.StatusOK, JoinToken{Farm: rec.ID, Token: token, Expires: expires})
}

// farmForToken returns the accepted farm whose join token is token, or nil.
func (u *Upstream) farmForToken(ctx context.Context, token string) (*MirrorRecord, error) {
	all, err := u.state.Mirrors(ctx)
	if err != nil {
		return nil, err
	}
	h := hashJoinToken(token)
	now := u.now()
	for _, rec := range all {
		if rec.JoinTokenHash != "" && subtle.ConstantTimeCompare([]byte(rec.JoinTokenHash), []byte(h)) == 1 &&
			now.Before(rec.JoinTokenExpires) && rec.State == StateAccepted && rec.Farm == "" {
			return rec, nil
		}
	}
	return nil, nil
}

// farmMembers returns the live records of the nodes that joined farm id.
func (u *Upstream) farmMembers(ctx context.Context, id string) ([]*MirrorRecord, error) {
	all, err := u.state.Mirrors(ctx)
	if err != nil {
		return nil, err
	}
	var out []*MirrorRecord
	for _, rec := range all {
		if rec.Farm == id {
			out = append(out, rec)
		}
	}
	return out, nil
}

// followFarm gives the nodes of farm root the root's mode and projects, and
// reports each change of projects on the change feed.
func (u *Upstream) followFarm(ctx context.Context, root *MirrorRecord) {
	members, err := u.farmMembers(ctx, root.ID)
	if err != nil {
		u.log.Error("farm nodes not updated", "farm", root.ID, "err", err)
		return
	}
	for _, m := range members {
		var added, removed []string
		_, err := u.state.UpdateMirror(ctx, m.ID, func(rec *MirrorRecord) error {
			added, removed = nil, nil
			for _, p := range root.Projects {
				if !slices.Contains(rec.Projects, p) {
					added = append(added, p)
				}
			}
			for _, p := range rec.Projects {
				if !slices.Contains(root.Projects, p) {
					removed = append(removed, p)
				}
			}
			rec.Mode, rec.Projects, rec.Updated = root.Mode, slices.Clone(root.Projects), u.now()
			return nil
		})
		if err != nil {
			u.log.Error("farm node not updated", "farm", root.ID, "node", m.ID, "err", err)
			continue
		}
		for _, p := range added {
			u.feed.append(ctx, FeedEvent{Type: FeedProjectAdded, Project: p, Mirror: m.ID})
		}
		for _, p := range removed {
			u.feed.append(ctx, FeedEvent{Type: FeedProjectRemoved, Project: p, Mirror: m.ID})
		}
	}
}

// handleNodes serves GET /mirrorServers/{id}/nodes: the nodes of the farm of
// mirror id (the mirror itself first), each with its state, last contact and
// how far behind the change feed it is.
func (u *Upstream) handleNodes(w http.ResponseWriter, r *http.Request) {
	root, ok := u.liveOrReply(w, r, r.PathValue("id"))
	if !ok {
		return
	}
	var err error
	if root.Farm != "" {
		if root, err = u.liveRecord(r.Context(), root.Farm); err != nil && !isNotFound(err) {
			u.internal(w, r, err)
			return
		}
		if root == nil || isNotFound(err) {
			writeError(w, http.StatusNotFound, "not_found", "the farm's first node was removed; list the farm by a remaining node's id")
			return
		}
	}
	members, err := u.farmMembers(r.Context(), root.ID)
	if err != nil {
		u.internal(w, r, err)
		return
	}
	seq, _ := u.state.FeedSeq(r.Context())
	var nodes []FarmNode
	for _, rec := range append([]*MirrorRecord{root}, members...) {
		ct := u.contacts.get(rec.ID)
		n := FarmNode{MirrorServer: rec.view(), LastContact: ct.at, EventsBehind: -1}
		if ct.polled {
			n.EventsBehind = max(int64(seq)-int64(ct.cursor), 0)
			initial := ct.initial
			n.InitialSync = &initial
		}
		nodes = append(nodes, n)
	}
	writeJSON(w, http.StatusOK, Page[FarmNode]{Values: nodes, Size: len(nodes), IsLastPage: true, Limit: len(nodes)})
}

// errJoinToken is the refusal of a registration with a join token that no farm
// holds (wrong, expired or replaced).
var errJoinToken = errors.New("the join token is not valid: it is wrong, expired or replaced; ask the upstream's administrator for a new one")
