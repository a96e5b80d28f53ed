package mirror

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// APIError is a non-success reply from the upstream.
type APIError struct {
	Status  int    // the HTTP status
	Code    string // the machine-readable reason, when the upstream gave one
	Message string
}

// Error implements error.
func (e *APIError) Error() string {
	return fmt.Sprintf("mirror: upstream answered %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// apiClient makes signed calls to the upstream.
type apiClient struct {
	base   string // upstream URL without a trailing slash
	id     string
	signer ssh.Signer
	http   *http.Client
	now    func() time.Time
}

// call sends a signed request and decodes a 2xx reply (or a reply whose status
// is in also) into out. Other statuses are *APIError; transport failures wrap
// ErrUnreachable or are a *CertError.
func (c *apiClient) call(ctx context.Context, method, path string, in, out any, also ...int) (int, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+APIPrefix+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if err := Sign(req, c.id, c.signer, body, c.now()); err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		host := req.URL.Hostname()
		return 0, classifyTLSError(c.base, host, c.rootsOf(), c.now(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%w: read reply: %v", ErrUnreachable, err)
	}
	ok := resp.StatusCode/100 == 2
	for _, s := range also {
		ok = ok || resp.StatusCode == s
	}
	if !ok {
		var eb errorBody
		_ = json.Unmarshal(data, &eb)
		msg := strings.TrimSpace(string(data))
		if len(eb.Errors) > 0 {
			msg = eb.Errors[0].Message
		}
		if len(msg) > 300 {
			msg = msg[:300]
		}
		return resp.StatusCode, &APIError{Status: resp.StatusCode, Code: eb.Code, Message: msg}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("mirror: decode upstream reply to %s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// rootsOf returns the client's root pool (nil: system roots).
func (c *apiClient) rootsOf() (roots *x509.CertPool) {
	if tr, ok := c.http.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		return tr.TLSClientConfig.RootCAs
	}
	return nil
}
