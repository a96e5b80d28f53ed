package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// guardedApp is an app whose administrator is admin:secret, with a settable
// clock and a count of bcrypt comparisons.
func guardedApp(t testing.TB) (*app, *atomic.Int64, *time.Time) {
	t.Helper()
	st := newMemoryState()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SetAdmin(context.Background(), "admin", hash); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &app{st: st, log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
	var n atomic.Int64
	a.guard.compares = func() { n.Add(1) }
	return a, &n, &now
}

func adminRequest(a *app, addr, user, pass string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/rest/api/1.0/admin/mesh", nil)
	r.RemoteAddr = addr + ":40000"
	r.SetBasicAuth(user, pass)
	w := httptest.NewRecorder()
	a.requireAdmin(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }).ServeHTTP(w, r)
	return w
}

// TestAdminPasswordGuard: an unknown name costs the same comparison as the
// right one; five failures from an address block it (429, Retry-After) without
// further comparisons while another address still gets in; the block ends
// after its time and doubles when failures go on; five failures for one name
// from several addresses block that name.
func TestAdminPasswordGuard(t *testing.T) {
	a, compares, now := guardedApp(t)
	if w := adminRequest(a, "10.0.0.1", "nobody", "x"); w.Code != 401 || compares.Load() != 1 {
		t.Fatalf("unknown name: %d, %d comparisons; want 401 after one", w.Code, compares.Load())
	}
	if w := adminRequest(a, "10.0.0.1", "admin", "wrong"); w.Code != 401 || compares.Load() != 2 {
		t.Fatalf("wrong password: %d, %d comparisons", w.Code, compares.Load())
	}
	for range 3 {
		adminRequest(a, "10.0.0.1", "nobody", "x")
	}
	w := adminRequest(a, "10.0.0.1", "admin", "secret")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("after five failures: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if compares.Load() != 5 {
		t.Fatalf("%d comparisons; a blocked attempt must not compare", compares.Load())
	}
	if w := adminRequest(a, "10.0.0.2", "admin", "secret"); w.Code != 200 {
		t.Fatalf("the administrator from another address: %d", w.Code)
	}
	*now = now.Add(2 * time.Second)
	if w := adminRequest(a, "10.0.0.1", "admin", "secret"); w.Code != 200 {
		t.Fatalf("after the block: %d", w.Code)
	}
	// Verified credentials are remembered: no comparison, even while blocked.
	before := compares.Load()
	for range 5 {
		adminRequest(a, "10.0.0.3", "guess", "x")
	}
	if w := adminRequest(a, "10.0.0.3", "admin", "secret"); w.Code != 200 || compares.Load() != before+5 {
		t.Fatalf("remembered credentials from a blocked address: %d, %d comparisons", w.Code, compares.Load()-before)
	}
	// Doubling: failures go on after the first block.
	for range 5 {
		adminRequest(a, "10.0.0.4", "x", "y")
	}
	*now = now.Add(1500 * time.Millisecond)
	adminRequest(a, "10.0.0.4", "x", "y") // the block ended: counted again, blocked for 2 s
	*now = now.Add(1500 * time.Millisecond)
	if w := adminRequest(a, "10.0.0.4", "x", "y"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("a repeated offender 1.5 s after its second block began: %d, want 429", w.Code)
	}
	// One name from many addresses.
	for i := range 5 {
		adminRequest(a, fmt.Sprintf("10.1.0.%d", i), "mallory", "x")
	}
	if w := adminRequest(a, "10.1.0.9", "mallory", "x"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("a name guessed from many addresses: %d, want 429", w.Code)
	}
}

// TestAdminPasswordGuardLoad is the load test of the guard: 16 clients guess
// the password as fast as they can for 3 s (bcrypt at the default cost, as
// stored) while the administrator, already signed in, makes requests; it
// reports the guesses answered per second, how many reached bcrypt, and the
// administrator's median and slowest latency. Only that the administrator was
// never refused is asserted.
func TestAdminPasswordGuardLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	st := newMemoryState()
	hash, _ := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.DefaultCost)
	st.SetAdmin(context.Background(), "admin", hash)
	a := &app{st: st, log: slog.New(slog.DiscardHandler)}
	var compares atomic.Int64
	a.guard.compares = func() { compares.Add(1) }
	srv := httptest.NewServer(a.requireAdmin(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	defer srv.Close()
	get := func(user, pass string) (int, error) {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get("admin", "secret"); code != 200 || err != nil {
		t.Fatalf("sign-in: %d %v", code, err)
	}
	stop := time.Now().Add(3 * time.Second)
	var guesses atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				get("admin", fmt.Sprintf("guess-%d", i))
				guesses.Add(1)
			}
		}()
	}
	var lat []time.Duration
	for time.Now().Before(stop) {
		t0 := time.Now()
		code, err := get("admin", "secret")
		lat = append(lat, time.Since(t0))
		if code != 200 || err != nil {
			t.Fatalf("the administrator was refused during the attack: %d %v", code, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	slices.Sort(lat)
	t.Logf("16 guessing clients for 3 s: %.0f guesses/s answered, %d reached bcrypt; the administrator: %d requests, median %v, slowest %v",
		float64(guesses.Load())/3, compares.Load(), len(lat), lat[len(lat)/2], lat[len(lat)-1])
}
