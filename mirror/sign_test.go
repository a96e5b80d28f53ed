package mirror

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func testKey(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSigningString(t *testing.T) {
	got := string(SigningString("GET", "/rest/mirroring/1.0/events?after=3&wait=30s", 1700000000, "abcd", []byte("")))
	want := "GET\n/rest/mirroring/1.0/events?after=3&wait=30s\n1700000000\nabcd\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestSignVerify(t *testing.T) {
	key := testKey(t)
	now := time.Unix(1700000000, 0)
	body := []byte(`{"a":1}`)
	r, _ := http.NewRequest(http.MethodPost, "https://u.example/rest/mirroring/1.0/authenticate?x=1", strings.NewReader(string(body)))
	if err := Sign(r, "id", key, body, now); err != nil {
		t.Fatal(err)
	}
	h, err := parseSignedHeaders(r)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		method string
		target string
		body   []byte
		at     time.Time
		ok     bool
	}{
		{"as signed", "POST", "/rest/mirroring/1.0/authenticate?x=1", body, now, true},
		{"at the skew limit", "POST", "/rest/mirroring/1.0/authenticate?x=1", body, now.Add(MaxSkew), true},
		{"beyond the skew", "POST", "/rest/mirroring/1.0/authenticate?x=1", body, now.Add(MaxSkew + time.Second), false},
		{"before the skew", "POST", "/rest/mirroring/1.0/authenticate?x=1", body, now.Add(-MaxSkew - time.Second), false},
		{"other method", "PUT", "/rest/mirroring/1.0/authenticate?x=1", body, now, false},
		{"other query", "POST", "/rest/mirroring/1.0/authenticate?x=2", body, now, false},
		{"other body", "POST", "/rest/mirroring/1.0/authenticate?x=1", []byte(`{"a":2}`), now, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := h.verify(key.PublicKey(), tc.method, tc.target, tc.body, tc.at)
			if (err == nil) != tc.ok {
				t.Fatalf("verify: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
