package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// maxBody bounds every REST request body.
const maxBody = 1 << 20

// apiError is one entry of a Bitbucket-style error body.
type apiError struct {
	Message string `json:"message"`
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// writeError maps err to a status and writes {"errors":[{"message":...}]}.
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	msg := "internal error"
	switch {
	case errors.Is(err, errBadRequest):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, errNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, errConflict):
		status, msg = http.StatusConflict, err.Error()
	case errors.Is(err, errUnauthorized):
		w.Header().Set("WWW-Authenticate", `Basic realm="gitfleet"`)
		status, msg = http.StatusUnauthorized, err.Error()
	}
	writeJSON(w, status, map[string][]apiError{"errors": {{Message: trimSentinel(msg)}}})
}

// trimSentinel drops the sentinel's prefix ("bad request: ") from a message.
func trimSentinel(msg string) string {
	for _, s := range []error{errBadRequest, errNotFound, errConflict, errUnauthorized} {
		p := s.Error() + ": "
		if len(msg) > len(p) && msg[:len(p)] == p {
			return msg[len(p):]
		}
	}
	return msg
}

// decodeJSON reads one JSON object into v, refusing unknown fields, trailing data
// and bodies over maxBody.
func decodeJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("%w: reading the body: %v", errBadRequest, err)
	}
	if len(body) > maxBody {
		return fmt.Errorf("%w: the body is larger than %d bytes", errBadRequest, maxBody)
	}
	return decodeStrict(body, v)
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: invalid JSON: %v", errBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: invalid JSON: data after the object", errBadRequest)
	}
	return nil
}

// page is a Bitbucket-style page of results.
type page[T any] struct {
	Values        []T  `json:"values"`
	Size          int  `json:"size"`
	IsLastPage    bool `json:"isLastPage"`
	Start         int  `json:"start"`
	Limit         int  `json:"limit"`
	NextPageStart *int `json:"nextPageStart,omitempty"`
}

// paginate cuts all into the page that ?start= and ?limit= ask for (limit 25 by
// default, at most 1000).
func paginate[T any](r *http.Request, all []T) (page[T], error) {
	start, limit := 0, 25
	if s := r.URL.Query().Get("start"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return page[T]{}, fmt.Errorf("%w: start must be a number >= 0", errBadRequest)
		}
		start = n
	}
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return page[T]{}, fmt.Errorf("%w: limit must be a number >= 1", errBadRequest)
		}
		limit = min(n, 1000)
	}
	p := page[T]{Start: start, Limit: limit, Values: []T{}}
	if start < len(all) {
		end := min(start+limit, len(all))
		p.Values = append(p.Values, all[start:end]...)
	}
	p.Size = len(p.Values)
	p.IsLastPage = start+p.Size >= len(all)
	if !p.IsLastPage {
		next := start + p.Size
		p.NextPageStart = &next
	}
	return p, nil
}

// writePage paginates all and writes the page, or the error.
func writePage[T any](w http.ResponseWriter, r *http.Request, all []T, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	p, err := paginate(r, all)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}
