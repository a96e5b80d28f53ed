package webadmin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
)

// APIError is a REST call's answer other than 2xx.
type APIError struct {
	Status  int
	Message string // the API's message when its body has one, else the body
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Call makes a REST request to api in-process, as user (see WithUser), and
// decodes a JSON answer into out (when out is not nil). A page acting through
// the REST API this way goes through the API's own checks and audit logging.
// body, when not nil, is sent as JSON. An answer outside 2xx is an *APIError.
func Call(ctx context.Context, api http.Handler, user, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(WithUser(ctx, user), method, path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.RemoteAddr = "127.0.0.1:0" // in-process
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	res := rec.Result()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return &APIError{Status: res.StatusCode, Message: apiMessage(data)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("webadmin: %s %s: decode the answer: %w", method, path, err)
		}
	}
	return nil
}

// apiMessage finds the message in an error body: Bitbucket's
// {"errors":[{"message":...}]}, {"message":...}, or the text itself.
func apiMessage(data []byte) string {
	var v struct {
		Message string `json:"message"`
		Errors  []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(data, &v) == nil {
		if len(v.Errors) > 0 && v.Errors[0].Message != "" {
			return v.Errors[0].Message
		}
		if v.Message != "" {
			return v.Message
		}
	}
	return strings.TrimSpace(string(data))
}
