package node

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet/mirror"
)

// The node's health paths, for load balancers and process supervisors.
const (
	// PathReady answers 200 "ready" while the node should take traffic, else
	// 503 "not ready: <reason>" (text/plain).
	PathReady = "/status/ready"
	// PathLive answers 200 "live" while the process serves HTTP at all.
	PathLive = "/status/live"
)

// DefaultReadyUpstreamOutage is how long a mirror may fail to reach the
// upstream's change feed before it reports not ready, when the configuration
// sets no limit (plugin.mirroring.readiness.upstream-outage).
const DefaultReadyUpstreamOutage = 60 * time.Second

// Readiness reports whether the node should take traffic: nil when ready,
// else an error whose message says why not. A node is not ready while it
// starts and while it drains for shutdown. A mirror is also not ready until
// it is accepted by the upstream and its initial sync is done, while sync is
// halted (a changed upstream host key), and while its change feed has failed
// for longer than plugin.mirroring.readiness.upstream-outage.
func (n *Node) Readiness() error {
	n.init()
	select {
	case <-n.stopping:
		return fmt.Errorf("draining for shutdown")
	default:
	}
	state, waiting := n.status.snapshot()
	switch state {
	case StateStopping:
		return fmt.Errorf("draining for shutdown")
	case StateStarting:
		return fmt.Errorf("starting: waiting for %s", strings.Join(waiting, ", "))
	}
	select {
	case <-n.ready:
	default:
		return fmt.Errorf("starting")
	}
	if mir := n.Mirror(); mir != nil {
		limit := n.Config.Mirroring.ReadyUpstreamOutage
		if limit <= 0 {
			limit = DefaultReadyUpstreamOutage
		}
		return mirrorReadiness(mir.Status(), limit, time.Now())
	}
	return nil
}

// mirrorReadiness is a mirror's part of Readiness, from its status at now.
func mirrorReadiness(st mirror.Status, limit time.Duration, now time.Time) error {
	switch {
	case st.State != mirror.StateAccepted:
		return fmt.Errorf("mirror is %s, not accepted by the upstream", st.State)
	case st.Sync.Halted != "":
		return fmt.Errorf("sync halted: %s", st.Sync.Halted)
	case st.HostKeyChanged:
		return fmt.Errorf("sync halted: the upstream's SSH host key changed")
	case !st.Sync.Running:
		return fmt.Errorf("sync is not running")
	case st.Sync.Paused && !st.Sync.PausedSince.IsZero() && now.Sub(st.Sync.PausedSince) > limit:
		msg := fmt.Sprintf("upstream unreachable for %s (limit %s)", now.Sub(st.Sync.PausedSince).Round(time.Second), limit)
		if st.LastError != "" {
			msg += ": " + st.LastError
		}
		return fmt.Errorf("%s", msg)
	case !st.Sync.Initial.Done:
		p := st.Sync.Initial
		if p.ReposTotal == 0 {
			return fmt.Errorf("initial sync not started")
		}
		return fmt.Errorf("initial sync in progress: %d of %d repositories", p.ReposDone, p.ReposTotal)
	}
	return nil
}

// serveReady answers GET /status/ready.
func (n *Node) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := n.Readiness(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %s\n", err)
		return
	}
	w.WriteHeader(http.StatusOK)
	fmt.Fprintln(w, "ready")
}

// serveLive answers GET /status/live.
func serveLive(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "live")
}
