package mirror_test

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
	"golang.org/x/crypto/ssh"
)

// sha1Signer signs with the legacy "ssh-rsa" (SHA-1) algorithm.
type sha1Signer struct{ inner ssh.AlgorithmSigner }

func (s sha1Signer) PublicKey() ssh.PublicKey { return s.inner.PublicKey() }

func (s sha1Signer) Sign(_ io.Reader, data []byte) (*ssh.Signature, error) {
	return s.inner.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSA)
}

func TestSignedRequestsRefused(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	homeA, homeB := testutil.NewHome(t), testutil.NewHome(t)
	a := p.NewMirror(t, mirrortest.MirrorOptions{Home: &homeA, Name: "a"})
	b := p.NewMirror(t, mirrortest.MirrorOptions{Home: &homeB, Name: "b"})
	mirrortest.Run(t, a)
	mirrortest.Run(t, b)
	mirrortest.WaitState(t, a, mirror.StatePending)
	mirrortest.WaitState(t, b, mirror.StatePending)
	p.Accept(t, a.ID(), mirror.ModeAllProjects)
	mirrortest.WaitState(t, a, mirror.StateAccepted)
	keyA, keyB := mirrortest.KeyOf(t, homeA), mirrortest.KeyOf(t, homeB)
	stranger := testutil.GenerateKey(t, testutil.Ed25519).Signer
	statePath := "/mirrorServers/" + a.ID() + "/state"

	// The control: a correctly signed request succeeds.
	if status, body := mirrortest.SignedDo(t, p, a.ID(), keyA, http.MethodGet, statePath, nil); status != http.StatusOK {
		t.Fatalf("signed state: %d %s", status, body)
	}

	tests := []struct {
		name  string
		build func() *http.Request
	}{
		{"unsigned", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, p.URL+mirror.APIPrefix+statePath, nil)
			return r
		}},
		{"forged", func() *http.Request {
			return p.NewSignedRequest(t, a.ID(), stranger, http.MethodGet, statePath, nil, time.Now())
		}},
		{"expired", func() *http.Request {
			return p.NewSignedRequest(t, a.ID(), keyA, http.MethodGet, statePath, nil, time.Now().Add(-3*time.Minute))
		}},
		{"from the future", func() *http.Request {
			return p.NewSignedRequest(t, a.ID(), keyA, http.MethodGet, statePath, nil, time.Now().Add(3*time.Minute))
		}},
		{"wrong mirror", func() *http.Request {
			return p.NewSignedRequest(t, b.ID(), keyB, http.MethodGet, statePath, nil, time.Now())
		}},
		{"other mirror's key", func() *http.Request {
			return p.NewSignedRequest(t, a.ID(), keyB, http.MethodGet, statePath, nil, time.Now())
		}},
		{"path changed after signing", func() *http.Request {
			r := p.NewSignedRequest(t, a.ID(), keyA, http.MethodGet, "/repos", nil, time.Now())
			r.URL.RawQuery = "start=1"
			return r
		}},
		{"timestamp changed after signing", func() *http.Request {
			r := p.NewSignedRequest(t, a.ID(), keyA, http.MethodGet, statePath, nil, time.Now())
			r.Header.Set(mirror.HeaderTimestamp, strconv.FormatInt(time.Now().Unix()+1, 10))
			return r
		}},
		{"garbage signature", func() *http.Request {
			r := p.NewSignedRequest(t, a.ID(), keyA, http.MethodGet, statePath, nil, time.Now())
			r.Header.Set(mirror.HeaderSignature, base64.StdEncoding.EncodeToString([]byte("nope")))
			return r
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := p.Send(t, tc.build()); status != http.StatusUnauthorized {
				t.Fatalf("got %d %s, want 401", status, body)
			}
		})
	}

	t.Run("replayed", func(t *testing.T) {
		r := p.NewSignedRequest(t, a.ID(), keyA, http.MethodGet, "/repos", nil, time.Now())
		if status, body := p.Send(t, r); status != http.StatusOK {
			t.Fatalf("first: %d %s", status, body)
		}
		if status, body := p.Send(t, r); status != http.StatusUnauthorized {
			t.Fatalf("replay: %d %s, want 401", status, body)
		}
	})

	t.Run("unapproved mirror", func(t *testing.T) {
		if status, _ := mirrortest.SignedDo(t, p, b.ID(), keyB, http.MethodGet, "/repos", nil); status != http.StatusForbidden {
			t.Fatalf("pending mirror listing repos: %d, want 403", status)
		}
	})

	t.Run("forged registration does nothing", func(t *testing.T) {
		victim := testutil.GenerateKey(t, testutil.Ed25519)
		id := "5f0c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
		status, _ := mirrortest.SignedDo(t, p, id, stranger, http.MethodPost, "/mirrorServers",
			mirror.RegisterRequest{ID: id, Name: "x", BaseURL: "https://127.0.0.1:1", PublicKey: victim.AuthorizedKey})
		if status != http.StatusUnauthorized {
			t.Fatalf("registration signed with another key: %d, want 401", status)
		}
		if s, _ := p.Do(t, true, http.MethodGet, "/mirrorServers/"+id, nil, nil); s != http.StatusNotFound {
			t.Fatalf("forged registration was stored: %d", s)
		}
	})

	t.Run("sha1 rsa signature", func(t *testing.T) {
		rsaKey := testutil.GenerateKey(t, testutil.RSA2048)
		id := "6f0c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
		status, body := mirrortest.SignedDo(t, p, id, sha1Signer{rsaKey.Signer.(ssh.AlgorithmSigner)}, http.MethodPost, "/mirrorServers",
			mirror.RegisterRequest{ID: id, Name: "x", BaseURL: "https://127.0.0.1:1", PublicKey: rsaKey.AuthorizedKey})
		if status != http.StatusUnauthorized {
			t.Fatalf("ssh-rsa (SHA-1) signature: %d %s, want 401", status, body)
		}
		// The same key signing with rsa-sha2-256 is accepted.
		status, body = mirrortest.SignedDo(t, p, id, rsaKey.Signer, http.MethodPost, "/mirrorServers",
			mirror.RegisterRequest{ID: id, Name: "x", BaseURL: "https://127.0.0.1:1", PublicKey: rsaKey.AuthorizedKey})
		if status != http.StatusCreated {
			t.Fatalf("rsa-sha2-256 registration: %d %s", status, body)
		}
	})

	t.Run("refused key types", func(t *testing.T) {
		for _, kt := range []testutil.KeyType{testutil.DSA, testutil.RSA1024} {
			k := testutil.GenerateKey(t, kt)
			id := "7f0c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
			status, body := mirrortest.SignedDo(t, p, id, k.Signer, http.MethodPost, "/mirrorServers",
				mirror.RegisterRequest{ID: id, Name: "x", BaseURL: "https://127.0.0.1:1", PublicKey: k.AuthorizedKey})
			if status != http.StatusBadRequest {
				t.Errorf("%s key registration: %d %s, want 400", kt, status, body)
			}
		}
	})

	t.Run("removed mirror", func(t *testing.T) {
		if status, _ := p.Do(t, true, http.MethodDelete, "/mirrorServers/"+a.ID(), nil, nil); status != http.StatusNoContent {
			t.Fatalf("delete: %d", status)
		}
		if status, _ := mirrortest.SignedDo(t, p, a.ID(), keyA, http.MethodGet, "/repos", nil); status != http.StatusUnauthorized {
			t.Fatalf("removed mirror listing repos: %d, want 401", status)
		}
		if status, _ := mirrortest.SignedDo(t, p, a.ID(), keyA, http.MethodGet, statePath, nil); status != http.StatusNotFound {
			t.Fatalf("removed mirror state: %d, want 404", status)
		}
	})
}

func TestRegistrationIdempotentAndConflicts(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	k := testutil.GenerateKey(t, testutil.Ed25519)
	other := testutil.GenerateKey(t, testutil.ECDSA256)
	id := "8f0c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	req := mirror.RegisterRequest{ID: id, Name: "m", BaseURL: "https://127.0.0.1:1", PublicKey: k.AuthorizedKey}
	if status, body := mirrortest.SignedDo(t, p, id, k.Signer, http.MethodPost, "/mirrorServers", req); status != http.StatusCreated {
		t.Fatalf("first registration: %d %s", status, body)
	}
	if status, body := mirrortest.SignedDo(t, p, id, k.Signer, http.MethodPost, "/mirrorServers", req); status != http.StatusOK {
		t.Fatalf("repeated registration: %d %s", status, body)
	}
	moved := req
	moved.BaseURL = "https://127.0.0.2:1"
	if status, _ := mirrortest.SignedDo(t, p, id, k.Signer, http.MethodPost, "/mirrorServers", moved); status != http.StatusConflict {
		t.Fatalf("different base URL: %d, want 409", status)
	}
	rekeyed := req
	rekeyed.PublicKey = other.AuthorizedKey
	if status, _ := mirrortest.SignedDo(t, p, id, other.Signer, http.MethodPost, "/mirrorServers", rekeyed); status != http.StatusConflict {
		t.Fatalf("different key: %d, want 409", status)
	}
	id2 := "9f0c2a7e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"
	sameKey := mirror.RegisterRequest{ID: id2, Name: "m2", BaseURL: "https://127.0.0.1:2", PublicKey: k.AuthorizedKey}
	if status, _ := mirrortest.SignedDo(t, p, id2, k.Signer, http.MethodPost, "/mirrorServers", sameKey); status != http.StatusConflict {
		t.Fatalf("key of another mirror: %d, want 409", status)
	}
}

// TestNoncesSurviveRestart replays a request after the primary restarted: the
// nonce store is in the database, so the replay is still refused.
func TestNoncesSurviveRestart(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	home := testutil.NewHome(t)
	m := p.NewMirror(t, mirrortest.MirrorOptions{Home: &home})
	mirrortest.Run(t, m)
	mirrortest.WaitState(t, m, mirror.StatePending)
	r := p.NewSignedRequest(t, m.ID(), mirrortest.KeyOf(t, home), http.MethodGet, "/mirrorServers/"+m.ID()+"/state", nil, time.Now())
	if status, body := p.Send(t, r); status != http.StatusOK {
		t.Fatalf("first: %d %s", status, body)
	}
	p.Kill()
	p.Revive(t)
	if status, body := p.Send(t, r); status != http.StatusUnauthorized {
		t.Fatalf("replay after restart: %d %s, want 401", status, body)
	}
	// The registration survived too.
	if status, _ := p.Do(t, true, http.MethodGet, "/mirrorServers/"+m.ID(), nil, nil); status != http.StatusOK {
		t.Fatalf("registration after restart: %d", status)
	}
}
