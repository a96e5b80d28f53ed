package mirror

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// APIPrefix is the path prefix of every upstream endpoint; Upstream sees full paths.
const APIPrefix = "/rest/mirroring/1.0"

// The headers of a signed mirror request (see Sign).
const (
	HeaderMirror    = "X-Gitfleet-Mirror"
	HeaderTimestamp = "X-Gitfleet-Timestamp"
	HeaderNonce     = "X-Gitfleet-Nonce"
	HeaderSignature = "X-Gitfleet-Signature"
)

// State is a mirror's registration state as the upstream records it.
type State string

// The registration states. StateRemoved is never stored by the upstream (a deleted
// mirror is answered with 404); the mirror side uses it for what it learned.
const (
	StatePending      State = "PENDING"
	StateAccepted     State = "ACCEPTED"
	StateRejected     State = "REJECTED"
	StateRemoved      State = "REMOVED"
	StateUnregistered State = "UNREGISTERED"
)

// Mode says which projects an accepted mirror holds.
type Mode string

// The mirroring modes. ModeAllProjects cannot be narrowed afterwards.
const (
	ModeAllProjects      Mode = "ALL_PROJECTS"
	ModeSelectedProjects Mode = "SELECTED_PROJECTS"
)

// RegisterRequest is the body of POST /mirrorServers.
type RegisterRequest struct {
	ID        string `json:"id"`        // a UUID the mirror generated once
	Name      string `json:"name"`      // the mirror's display name
	BaseURL   string `json:"baseUrl"`   // the mirror's own https:// base URL
	PublicKey string `json:"publicKey"` // the mirror's key, one authorized_keys line
	// JoinToken, when set, joins the farm whose token it is (see JoinToken):
	// the node is accepted at once, with the farm's projects.
	JoinToken string `json:"joinToken,omitempty"`
}

// MirrorServer is how the upstream describes a registered mirror to administrators
// and in the reply to a registration.
type MirrorServer struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	BaseURL       string   `json:"baseUrl"`
	State         State    `json:"state"`
	MirroringMode Mode     `json:"mirroringMode,omitempty"`
	Projects      []string `json:"projects,omitempty"`
	PublicKey     string   `json:"publicKey,omitempty"`
	Farm          string   `json:"farm,omitempty"` // for a node that joined a farm: the farm's first mirror
	// Fingerprint is the SHA-256 fingerprint of the mirror's key, and Created
	// when it registered: what an administrator compares before authorizing.
	Fingerprint string    `json:"fingerprint,omitempty"`
	Created     time.Time `json:"created,omitzero"`
}

// Page is a Bitbucket-style page of values.
type Page[T any] struct {
	Values        []T  `json:"values"`
	Size          int  `json:"size"`
	IsLastPage    bool `json:"isLastPage"`
	Start         int  `json:"start"`
	Limit         int  `json:"limit"`
	NextPageStart *int `json:"nextPageStart,omitempty"`
}

// AcceptRequest is the body of POST /mirrorServers/{id}/accept.
type AcceptRequest struct {
	MirroringMode Mode     `json:"mirroringMode"`
	Projects      []string `json:"projects,omitempty"`
}

// StateReply is the body of the signed GET /mirrorServers/{id}/state. SSH details
// are present only once the mirror is accepted.
type StateReply struct {
	State         State    `json:"state"`
	MirroringMode Mode     `json:"mirroringMode,omitempty"`
	Projects      []string `json:"projects,omitempty"`
	SSHBaseURL    string   `json:"sshBaseUrl,omitempty"`
	SSHHostKeys   []string `json:"sshHostKeys,omitempty"`
	// Farm, for a node that joined a farm, is the farm's first mirror.
	Farm string `json:"farm,omitempty"`
}

// RepoEntry is one repository in GET /repos.
type RepoEntry struct {
	Project  string `json:"project"`
	Slug     string `json:"slug"`
	SSHURL   string `json:"sshUrl"`
	RefsHash string `json:"refsHash"`
}

// AuthRequest is the body of POST /authenticate.
type AuthRequest struct {
	PublicKey string `json:"publicKey"` // the user's key, one authorized_keys line
	Project   string `json:"project"`
	Slug      string `json:"slug"`
}

// AuthReply is the reply to POST /authenticate.
type AuthReply struct {
	Allowed bool   `json:"allowed"`
	User    string `json:"user,omitempty"`
}

// FeedType says what a change-feed event reports.
type FeedType string

// The change-feed event types.
const (
	FeedRepoCreated    FeedType = "repo_created"
	FeedRepoDeleted    FeedType = "repo_deleted"
	FeedRefsChanged    FeedType = "refs_changed"
	FeedProjectAdded   FeedType = "project_added"
	FeedProjectRemoved FeedType = "project_removed"
)

// FeedEvent is one entry of the upstream's change feed.
type FeedEvent struct {
	Seq      uint64   `json:"seq"`
	Type     FeedType `json:"type"`
	Project  string   `json:"project"`
	Slug     string   `json:"slug,omitempty"`
	RefsHash string   `json:"refsHash,omitempty"`
	// Mirror limits a project event to one mirror; empty means every mirror.
	// It is not sent.
	Mirror string `json:"-"`
}

// EventsReply is the body of GET /events.
type EventsReply struct {
	Events []FeedEvent `json:"events"`
	Last   uint64      `json:"last"`
	Resync bool        `json:"resync,omitempty"` // with status 410: the cursor is too old
}

// apiError is one entry of a Bitbucket-style error body.
type apiError struct {
	Message string `json:"message"`
}

// errorBody is a Bitbucket-style error reply.
type errorBody struct {
	Errors []apiError `json:"errors"`
	Code   string     `json:"code,omitempty"` // machine-readable reason, e.g. "removed"
	Resync bool       `json:"resync,omitempty"`
}

// maxBody bounds every request and reply body the package reads.
const maxBody = 1 << 20

// decodeJSON decodes exactly one JSON value from data into v, refusing unknown
// fields and trailing data.
func decodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid JSON body: trailing data")
	}
	return nil
}

// writeJSON writes v as the reply with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes a Bitbucket-style error reply.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Errors: []apiError{{Message: msg}}, Code: code})
}
