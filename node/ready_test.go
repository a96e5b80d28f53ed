package node

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mirror"
)

// TestMirrorReadiness walks a mirror's status through what keeps it out of a
// load balancer: not accepted, halted, initial sync, an upstream outage past
// the limit.
func TestMirrorReadiness(t *testing.T) {
	now := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	ready := mirror.Status{State: mirror.StateAccepted, Sync: mirror.SyncStatus{Running: true,
		Initial: mirror.InitialProgress{Done: true, ReposTotal: 3, ReposDone: 3}}}
	with := func(f func(*mirror.Status)) mirror.Status {
		st := ready
		f(&st)
		return st
	}
	tests := []struct {
		name string
		st   mirror.Status
		want string // "" for ready
	}{
		{"ready", ready, ""},
		{"pending", with(func(s *mirror.Status) { s.State = mirror.StatePending; s.Sync = mirror.SyncStatus{} }), "mirror is PENDING"},
		{"halted", with(func(s *mirror.Status) { s.Sync.Halted = "host key mismatch" }), "sync halted: host key mismatch"},
		{"host key changed", with(func(s *mirror.Status) { s.HostKeyChanged = true }), "host key changed"},
		{"not running", with(func(s *mirror.Status) { s.Sync.Running = false }), "sync is not running"},
		{"initial sync", with(func(s *mirror.Status) {
			s.Sync.Initial = mirror.InitialProgress{ReposTotal: 3, ReposDone: 1}
		}), "initial sync in progress: 1 of 3 repositories"},
		{"initial sync before the first reconcile", with(func(s *mirror.Status) { s.Sync.Initial = mirror.InitialProgress{} }), "initial sync not started"},
		{"short outage", with(func(s *mirror.Status) {
			s.Sync.Paused, s.Sync.PausedSince = true, now.Add(-30*time.Second)
		}), ""},
		{"long outage", with(func(s *mirror.Status) {
			s.Sync.Paused, s.Sync.PausedSince, s.LastError = true, now.Add(-90*time.Second), "connection refused"
		}), "upstream unreachable for 1m30s (limit 1m0s): connection refused"},
		{"long outage during the initial sync", with(func(s *mirror.Status) {
			s.Sync.Paused, s.Sync.PausedSince = true, now.Add(-2*time.Minute)
			s.Sync.Initial = mirror.InitialProgress{ReposTotal: 3}
		}), "upstream unreachable for 2m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mirrorReadiness(tt.st, time.Minute, now)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("not ready: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("ready, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("got %q, want %q", err, tt.want)
			}
		})
	}
}

func getPath(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestPrimaryReadiness: a running primary answers 200 "ready" on PathReady,
// whatever the method (HAProxy's httpchk sends OPTIONS by default), and
// "live" on PathLive; once Shutdown begins it is not ready.
func TestPrimaryReadiness(t *testing.T) {
	home := gitfleet.Home(t.TempDir())
	cfg := testConfig(t, home)
	n := &Node{Home: home, Config: cfg, State: mirror.NewMemoryState()}
	if err := n.Readiness(); err == nil || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("Readiness before the start: %v", err)
	}
	served := serve(t, n)
	for _, m := range []string{"GET", "HEAD", "OPTIONS"} {
		code, body := getPath(t, m, LocalURL(cfg)+PathReady)
		if code != 200 || (m != "HEAD" && body != "ready\n") {
			t.Fatalf("%s %s: %d %q", m, PathReady, code, body)
		}
	}
	if code, body := getPath(t, "GET", LocalURL(cfg)+PathLive); code != 200 || body != "live\n" {
		t.Fatalf("%s: %d %q", PathLive, code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- n.Shutdown(ctx) }()
	<-n.stopping
	if err := n.Readiness(); err == nil || err.Error() != "draining for shutdown" {
		t.Fatalf("Readiness during Shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatal(err)
	}
}
