package mirrortest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"golang.org/x/crypto/ssh"
)

// KeyOf reads the mirror key stored in home.
func KeyOf(t testing.TB, home testutil.Home) ssh.Signer {
	t.Helper()
	k, err := mirror.LoadKey(gitfleet.Home(home.Dir))
	if err != nil {
		t.Fatal(err)
	}
	return k.Signer
}

// PublicLine returns pub as an authorized_keys line.
func PublicLine(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// NewSignedRequest builds a request to the primary signed as mirror id with
// signer at time now.
func (p *Primary) NewSignedRequest(t testing.TB, id string, signer ssh.Signer, method, path string, in any, now time.Time) *http.Request {
	t.Helper()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, p.URL+mirror.APIPrefix+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := mirror.Sign(req, id, signer, body, now); err != nil {
		t.Fatal(err)
	}
	return req
}

// Send sends req (its body is re-readable when built by NewSignedRequest) and
// returns the status and body.
func (p *Primary) Send(t testing.TB, req *http.Request) (int, []byte) {
	t.Helper()
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		req.Body = b
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// SignedDo sends a request signed now as mirror id with signer.
func SignedDo(t testing.TB, p *Primary, id string, signer ssh.Signer, method, path string, in any) (int, []byte) {
	t.Helper()
	return p.Send(t, p.NewSignedRequest(t, id, signer, method, path, in, time.Now()))
}
