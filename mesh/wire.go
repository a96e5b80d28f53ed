package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// The sidecar's HTTP API. Every request carries a token (see auth.go). Management
// calls are POSTs of JSON; errors come back as errorBody with a status code.
const (
	pathHealth    = "/v1/health"
	pathCreate    = "/v1/create"
	pathDelete    = "/v1/delete"
	pathList      = "/v1/list"
	pathExists    = "/v1/exists"
	pathRefs      = "/v1/refs"
	pathRefsHash  = "/v1/refshash"
	pathFetch     = "/v1/fetch"  // response: NDJSON fetchLine
	pathEvents    = "/v1/events" // response: NDJSON Event, one per line
	pathGit       = "/v1/git"    // upgraded to a raw byte stream
	pathGitResult = "/v1/git/result"

	upgradeProto   = "gitfleet-git"
	hdrService     = "X-Gitfleet-Service"
	hdrRepo        = "X-Gitfleet-Repo"
	hdrProtocol    = "X-Gitfleet-Protocol"
	hdrSignedPush  = "X-Gitfleet-Require-Signed-Push" // "1": GitRequest.RequireSignedPush
	hdrLFSOp       = "X-Gitfleet-Lfs-Operation"       // GitRequest.LFSOperation
	hdrUser        = "X-Gitfleet-User"                // GitRequest.User
	hdrSession     = "X-Gitfleet-Session"
	trailerExit    = "X-Gitfleet-Exit"
	trailerError   = "X-Gitfleet-Error"
	trailerErrCode = "X-Gitfleet-Error-Code"
	authScheme     = "Gitfleet "
	maxRequestBody = 1 << 20
)

type repoRequest struct {
	Project string `json:"project"`
	Slug    string `json:"slug"`
}

type fetchRequest struct {
	Project string       `json:"project"`
	Slug    string       `json:"slug"`
	Options FetchOptions `json:"options"`
}

// fetchLine is one line of a fetch response: progress, then a result or an error.
type fetchLine struct {
	Progress *FetchProgress `json:"progress,omitempty"`
	Result   *FetchResult   `json:"result,omitempty"`
	Error    *errorBody     `json:"error,omitempty"`
}

type errorBody struct {
	Message string `json:"error"`
	Code    string `json:"code"`
}

type healthResponse struct {
	PID int `json:"pid"`
}

// errorKinds lists the sentinels that cross the wire to their codes and statuses.
type errorKind struct {
	err    error
	code   string
	status int
}

func errorKinds() []errorKind {
	return []errorKind{
		{ErrInvalidName, "invalid_name", http.StatusBadRequest},
		{ErrUnknownService, "unknown_service", http.StatusBadRequest},
		{ErrNotFound, "not_found", http.StatusNotFound},
		{ErrExists, "exists", http.StatusConflict},
		{ErrClosed, "closed", http.StatusServiceUnavailable},
		{ErrHostKey, "host_key", http.StatusBadGateway},
		{ErrFetch, "fetch", http.StatusBadGateway},
		{ErrLFS, "lfs", http.StatusBadGateway},
		{ErrUnauthorized, "unauthorized", http.StatusUnauthorized},
		{context.DeadlineExceeded, "deadline", http.StatusGatewayTimeout},
		{context.Canceled, "canceled", http.StatusServiceUnavailable},
	}
}

// encodeError returns the status and wire form of err.
func encodeError(err error) (int, errorBody) {
	var codes []byte
	status := http.StatusInternalServerError
	for _, k := range errorKinds() {
		if errors.Is(err, k.err) {
			if codes != nil {
				codes = append(codes, ',')
			} else {
				status = k.status
			}
			codes = append(codes, k.code...)
		}
	}
	return status, errorBody{Message: err.Error(), Code: string(codes)}
}

// remoteError is an error reported by the sidecar: its message, and the sentinels
// it matched there, so errors.Is works the same on both sides (a not-found error
// matches ErrNotFound and, as there, fs.ErrNotExist).
type remoteError struct {
	msg   string
	kinds []error
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool {
	for _, k := range e.kinds {
		if errors.Is(k, target) {
			return true
		}
	}
	return false
}

// decodeError turns a wire error back into an error.
func decodeError(b errorBody) error {
	e := &remoteError{msg: b.Message}
	for _, k := range errorKinds() {
		for _, c := range splitComma(b.Code) {
			if c == k.code {
				e.kinds = append(e.kinds, k.err)
			}
		}
	}
	if e.msg == "" {
		e.msg = "mesh: sidecar error"
	}
	return e
}

func splitComma(s string) []string {
	var out []string
	for s != "" {
		i := 0
		for i < len(s) && s[i] != ',' {
			i++
		}
		out = append(out, s[:i])
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	status, body := encodeError(err)
	writeJSON(w, status, body)
}
