package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/sshserve"
)

// progressInterval is how often a mirror logs its state and initial-sync
// progress.
const progressInterval = 5 * time.Second

// MirrorSetup turns the properties into a mirror's setup (setup.displayName,
// setup.baseUrl, plugin.mirroring.upstream.url and .type).
func MirrorSetup(cfg *props.Config) mirror.SetupConfig {
	return mirror.SetupConfig{
		DisplayName:  cfg.Setup.DisplayName,
		BaseURL:      cfg.Setup.BaseURL,
		UpstreamURL:  cfg.Mirroring.UpstreamURL,
		UpstreamType: cfg.Mirroring.UpstreamType,
	}
}

// startMirror gives the node its mirror role: the mirror key (created on the
// first start), mirror.Open with the setup from the properties, the mirror's
// routes, and its policy composed with the SSH server's callbacks. The mirror
// runs once run is called; stop ends it.
func (n *Node) startMirror(ctx context.Context, h *handler, state State, repos mesh.Repos, srv *sshserve.Server) (run func() <-chan error, stop func(), err error) {
	cfg := n.Config
	n.log.Info("starting mirror", "home", n.Home.Dir(), "upstream", cfg.Mirroring.UpstreamURL, "baseUrl", cfg.Setup.BaseURL)
	// The mirror key is created on the first start and loaded on later ones;
	// Open checks that it is the key the mirror was set up with.
	key, err := mirror.LoadOrCreateKey(n.Home)
	if err != nil {
		return nil, nil, err
	}
	mcfg := mirror.Config{
		State:        state,
		Key:          key,
		Setup:        MirrorSetup(cfg),
		Repos:        repos,
		SyncInterval: cfg.Mirroring.SyncInterval,
		JoinToken:    cfg.Mirroring.FarmJoinToken,
		Logger:       n.log.With("component", "mirror"),
	}
	mir, err := mirror.Open(ctx, mcfg)
	if err != nil {
		return nil, nil, n.mirrorSetupError(ctx, err, mcfg)
	}
	token, err := newDiagnoseToken(n.Home)
	if err != nil {
		mir.Close()
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathMirroring+"status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, MirrorStatusView(mir.Status()))
	})
	mux.Handle("GET "+DiagnosticsPath, diagnosticsHandler(token, mcfg))
	h.set(n.routes(mux))
	mir.ConfigureServer(srv)
	n.mu.Lock()
	n.mir = mir
	n.mu.Unlock()

	var wg sync.WaitGroup
	runDone := make(chan error, 1)
	run = func() <-chan error {
		wg.Add(2)
		go func() {
			defer wg.Done()
			runDone <- mir.Run(ctx)
		}()
		go func() {
			defer wg.Done()
			n.watchMirror(ctx, mir)
		}()
		n.log.Info("mirror running", "id", mir.ID(), "http", cfg.PublicBaseURL(), "ssh", cfg.SSHBaseURL())
		return runDone
	}
	stop = func() {
		dctx, cancel := n.drainContext()
		defer cancel()
		if err := mir.Shutdown(dctx); err != nil && !errors.Is(err, mirror.ErrMirrorClosed) {
			mir.Close()
		}
		wg.Wait()
	}
	return run, stop, nil
}

// watchMirror logs what an operator needs while the mirror runs: what the
// upstream's administrator must do while it is pending, state changes, and the
// initial sync's progress. It ends when the node stops.
func (n *Node) watchMirror(ctx context.Context, mir *mirror.Mirror) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	var lastState mirror.State
	var lastPendingLog time.Time
	var initialDone bool
	for {
		st := mir.Status()
		if st.State != lastState {
			n.log.Info("mirror state", "state", string(st.State), "mode", string(st.Mode), "projects", st.Projects)
			lastState = st.State
		}
		switch st.State {
		case mirror.StatePending:
			if time.Since(lastPendingLog) > 5*time.Minute {
				n.log.Warn("mirror is waiting for approval: ask an administrator of the upstream to accept it",
					"mirror", st.Name, "id", st.ID,
					"list", strings.TrimRight(st.UpstreamURL, "/")+PathMirroring+"mirrorServers",
					"approve", approveCommand(st))
				lastPendingLog = time.Now()
			}
		case mirror.StateRejected:
			n.log.Error("the upstream rejected this mirror; remove the mirror's home and start again to register anew", "id", st.ID)
		case mirror.StateRemoved:
			n.log.Error("the upstream removed this mirror; remove the mirror's home and start again to register anew", "id", st.ID)
		case mirror.StateAccepted:
			if p := st.Sync.Initial; st.Sync.Running && !initialDone {
				n.log.Info("initial sync", "repositories", fmt.Sprintf("%d/%d", p.ReposDone, p.ReposTotal), "bytes", p.BytesDone, "done", p.Done)
				initialDone = p.Done
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-n.stopping:
			return
		case <-t.C:
		}
	}
}

// approveCommand is the REST call an upstream administrator runs to accept the
// mirror for selected projects.
func approveCommand(st mirror.Status) string {
	return fmt.Sprintf(`curl -fsS -u ADMIN:PASSWORD -H 'Content-Type: application/json' -d '{"mirroringMode":"SELECTED_PROJECTS","projects":["PROJ"]}' %s%smirrorServers/%s/accept`,
		strings.TrimRight(st.UpstreamURL, "/"), PathMirroring, st.ID)
}

// MirrorStatusJSON is a mirror's status page (GET /rest/mirroring/1.0/status,
// unauthenticated).
type MirrorStatusJSON struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	State       string            `json:"state"`
	Mode        string            `json:"mirroringMode,omitempty"`
	Projects    []string          `json:"projects,omitempty"`
	UpstreamURL string            `json:"upstreamUrl"`
	LastError   string            `json:"lastError,omitempty"`
	Syncing     bool              `json:"syncing"`
	Paused      bool              `json:"paused"`
	LagSeconds  float64           `json:"lagSeconds"`
	Initial     map[string]any    `json:"initialSync"`
	Repos       []MirrorRepoJSON  `json:"repositories"`
	HostKey     map[string]string `json:"hostKey,omitempty"`
}

// MirrorRepoJSON is one repository on a mirror's status page.
type MirrorRepoJSON struct {
	Project    string  `json:"project"`
	Slug       string  `json:"slug"`
	LastSync   string  `json:"lastSync,omitempty"`
	LagSeconds float64 `json:"lagSeconds"`
	LastError  string  `json:"lastError,omitempty"`
}

// MirrorStatusView returns the status page for st.
func MirrorStatusView(st mirror.Status) MirrorStatusJSON {
	v := MirrorStatusJSON{
		ID: st.ID, Name: st.Name, State: string(st.State), Mode: string(st.Mode), Projects: st.Projects,
		UpstreamURL: st.UpstreamURL, LastError: st.LastError, Syncing: st.Sync.Running, Paused: st.Sync.Paused,
		LagSeconds: st.Sync.Lag.Seconds(),
		Initial: map[string]any{
			"done": st.Sync.Initial.Done, "repositoriesTotal": st.Sync.Initial.ReposTotal,
			"repositoriesDone": st.Sync.Initial.ReposDone, "bytesDone": st.Sync.Initial.BytesDone,
		},
		Repos: []MirrorRepoJSON{},
	}
	if st.HostKeyChanged {
		v.HostKey = map[string]string{"problem": "the upstream's SSH host key changed; sync is stopped until it is trusted again"}
	}
	for _, r := range st.Sync.Repos {
		rj := MirrorRepoJSON{Project: r.Project, Slug: r.Slug, LagSeconds: r.Lag.Seconds(), LastError: r.LastError}
		if !r.LastSync.IsZero() {
			rj.LastSync = r.LastSync.UTC().Format(time.RFC3339)
		}
		v.Repos = append(v.Repos, rj)
	}
	return v
}

// mirrorSetupError explains a mirror setup that cannot be used, with the
// doctor's advice.
func (n *Node) mirrorSetupError(ctx context.Context, err error, mcfg mirror.Config) error {
	var changed *mirror.SetupChangedError
	if errors.As(err, &changed) {
		return fmt.Errorf("%w; the home is %s", err, n.Home.Dir())
	}
	advice := setupAdvice(ctx, mcfg)
	if advice == "" {
		advice = " (run `server -diagnose` for a step-by-step check)"
	} else {
		advice = "; the doctor says:" + advice
	}
	return fmt.Errorf("mirror setup failed: %w%s", err, advice)
}
