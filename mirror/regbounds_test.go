package mirror_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// registerFrom sends a self-signed registration of a new mirror from local
// address from (127.0.0.x) and returns the status and the Retry-After header.
func registerFrom(t *testing.T, p *mirrortest.Primary, from string, i int, at time.Time) (int, string) {
	t.Helper()
	key := testutil.GenerateKey(t, testutil.Ed25519)
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	body, _ := json.Marshal(mirror.RegisterRequest{ID: id, Name: fmt.Sprintf("spam %d", i),
		BaseURL: "https://127.0.0.1:1", PublicKey: key.AuthorizedKey})
	req, _ := http.NewRequest(http.MethodPost, p.URL+mirror.APIPrefix+"/mirrorServers", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := mirror.Sign(req, id, key.Signer, body, at); err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:     func(ctx context.Context, n, a string) (net.Conn, error) { return d.DialContext(ctx, n, a) },
		TLSClientConfig: &tls.Config{RootCAs: p.CA.Pool},
	}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestRegistrationBounds: unauthenticated registrations are bounded: past the
// pending ones allowed per address (3 here) and in all (5 here) they are
// refused with 429 and Retry-After while the others are untouched; a pending
// registration older than PendingExpiry is removed by the next one; removed
// records are purged by the administrator (or after RemovedRetention).
func TestRegistrationBounds(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Now: func() time.Time { return clock() }, Configure: func(c *mirror.UpstreamConfig) {
		c.MaxPendingPerAddress, c.MaxPending = 3, 5
		c.PendingExpiry = time.Hour
	}})
	n := 0
	for range 3 {
		n++
		if st, _ := registerFrom(t, p, "127.0.0.2", n, now); st != http.StatusCreated {
			t.Fatalf("registration %d from 127.0.0.2: %d", n, st)
		}
	}
	n++
	if st, retry := registerFrom(t, p, "127.0.0.2", n, now); st != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("a fourth pending registration from one address: %d, Retry-After %q", st, retry)
	}
	for range 2 {
		n++
		if st, _ := registerFrom(t, p, "127.0.0.3", n, now); st != http.StatusCreated {
			t.Fatalf("registration %d from 127.0.0.3: %d", n, st)
		}
	}
	n++
	if st, _ := registerFrom(t, p, "127.0.0.4", n, now); st != http.StatusTooManyRequests {
		t.Fatalf("a sixth pending registration in all: %d, want 429", st)
	}
	var list mirror.Page[mirror.MirrorServer]
	p.Do(t, true, http.MethodGet, "/mirrorServers?limit=1000", nil, &list)
	if len(list.Values) != 5 {
		t.Fatalf("%d registrations stored, want 5", len(list.Values))
	}

	// Two hours later the pending ones have expired: a new one is admitted and
	// the old ones are gone.
	now = now.Add(2 * time.Hour)
	n++
	if st, _ := registerFrom(t, p, "127.0.0.2", n, now); st != http.StatusCreated {
		t.Fatalf("a registration after the others expired: %d", st)
	}
	p.Do(t, true, http.MethodGet, "/mirrorServers?limit=1000", nil, &list)
	if len(list.Values) != 1 {
		t.Fatalf("%d registrations after expiry, want 1", len(list.Values))
	}
	var purged struct{ Purged int }
	if st, body := p.Do(t, true, http.MethodDelete, "/mirrorServers/removed", nil, &purged); st != http.StatusOK || purged.Purged != 5 {
		t.Fatalf("purge: %d %s", st, body)
	}
	if st, _ := p.Do(t, false, http.MethodDelete, "/mirrorServers/removed", nil, nil); st != http.StatusUnauthorized && st != http.StatusForbidden {
		t.Fatalf("purge without the administrator: %d", st)
	}
}
