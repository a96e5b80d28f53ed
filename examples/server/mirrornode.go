package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/sshserve"
)

// progressInterval is how often a mirror logs initial-sync progress.
const progressInterval = 5 * time.Second

// mirrorSetup turns the properties into the mirror's setup.
func mirrorSetup(cfg *props.Config) mirror.SetupConfig {
	return mirror.SetupConfig{
		DisplayName:  cfg.Setup.DisplayName,
		BaseURL:      cfg.Setup.BaseURL,
		UpstreamURL:  cfg.Mirroring.UpstreamURL,
		UpstreamType: cfg.Mirroring.UpstreamType,
	}
}

// runMirrorNode runs the node as a smart mirror: the same HTTP, sidecar and SSH as
// a primary, but its repositories come from the upstream and its readers are
// checked with the upstream.
func runMirrorNode(ctx context.Context, o options, l layout, cfg *props.Config, logger *slog.Logger, stdout io.Writer) error {
	logger.Info("starting mirror", "home", o.home, "version", version, "upstream", cfg.Mirroring.UpstreamURL, "baseUrl", cfg.Setup.BaseURL)
	a, stopBase, err := startBase(ctx, l, cfg, logger)
	if err != nil {
		return err
	}
	defer stopBase()

	// The mirror key is created on the first start and loaded on later ones;
	// Open checks that it is the key the mirror was set up with.
	key, err := mirror.LoadOrCreateKey(gitfleet.Home(o.home))
	if err != nil {
		return err
	}
	mcfg := mirror.Config{
		State:        mirror.NewBoltState(a.db),
		Key:          key,
		Setup:        mirrorSetup(cfg),
		Repos:        a.repos,
		SyncInterval: cfg.Mirroring.SyncInterval,
		Logger:       logger.With("component", "mirror"),
	}
	mir, err := mirror.Open(ctx, mcfg)
	if err != nil {
		return mirrorSetupError(ctx, err, o.home, mcfg)
	}
	defer mir.Close()
	token, err := newDiagnoseToken(l)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", a.handleStatus)
	mux.HandleFunc("GET /rest/mirroring/1.0/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, mirrorStatusView(mir.Status()))
	})
	mux.Handle("GET /rest/api/1.0/admin/mesh", a.requireAdmin(a.handleMeshState))
	mux.HandleFunc("GET "+diagnosticsPath, diagnosticsHandler(token, mcfg))
	a.setHandler(mux)
	if _, _, err := a.ensureAdmin(adminSetup{Username: cfg.Setup.Sysadmin.Username, Password: cfg.Setup.Sysadmin.Password}, l.Config); err != nil {
		return err
	}

	hostKeys, err := sshserve.LoadOrCreateHostKeys(l.Config)
	if err != nil {
		return err
	}
	sshSrv := newSSHServer(cfg, hostKeys, a.repos, logger)
	mir.ConfigureServer(sshSrv)
	sshDone, err := serveSSH(ctx, sshSrv, cfg, logger)
	if err != nil {
		return err
	}
	a.status.ready("ssh")

	runDone := make(chan error, 1)
	go func() { runDone <- mir.Run(ctx) }()
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		watchMirror(ctx, mir, cfg, logger)
	}()
	logger.Info("mirror running", "id", mir.ID(), "http", httpURL(cfg), "ssh", cfg.SSHBaseURL())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-runDone:
	}
	logger.Info("shutting down: draining SSH sessions and HTTP requests", "deadline", drainTimeout)
	a.status.stop()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	if err := sshSrv.Shutdown(sctx); err != nil {
		logger.Warn("SSH drain incomplete", "err", err)
	}
	<-sshDone
	mir.Close()
	if runErr == nil {
		runErr = <-runDone
	}
	<-watchDone
	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, mirror.ErrMirrorClosed) {
		return runErr
	}
	return nil
}

// watchMirror logs what an operator needs while the mirror runs: what the
// upstream's administrator must do while it is pending, state changes, and the
// initial sync's progress.
func watchMirror(ctx context.Context, mir *mirror.Mirror, cfg *props.Config, logger *slog.Logger) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	var lastState mirror.State
	var lastPendingLog time.Time
	var initialDone bool
	for {
		st := mir.Status()
		if st.State != lastState {
			logger.Info("mirror state", "state", string(st.State), "mode", string(st.Mode), "projects", st.Projects)
			lastState = st.State
		}
		switch st.State {
		case mirror.StatePending:
			if time.Since(lastPendingLog) > 5*time.Minute {
				logger.Warn("mirror is waiting for approval: ask an administrator of the upstream to accept it",
					"mirror", st.Name, "id", st.ID,
					"list", strings.TrimRight(st.UpstreamURL, "/")+"/rest/mirroring/1.0/mirrorServers",
					"approve", approveCommand(st))
				lastPendingLog = time.Now()
			}
		case mirror.StateRejected:
			logger.Error("the upstream rejected this mirror; remove the mirror's home and start again to register anew", "id", st.ID)
		case mirror.StateRemoved:
			logger.Error("the upstream removed this mirror; remove the mirror's home and start again to register anew", "id", st.ID)
		case mirror.StateAccepted:
			if p := st.Sync.Initial; st.Sync.Running && !initialDone {
				logger.Info("initial sync", "repositories", fmt.Sprintf("%d/%d", p.ReposDone, p.ReposTotal), "bytes", p.BytesDone, "done", p.Done)
				initialDone = p.Done
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// approveCommand is the REST call an upstream administrator runs to accept the
// mirror for selected projects.
func approveCommand(st mirror.Status) string {
	return fmt.Sprintf(`curl -fsS -u ADMIN:PASSWORD -H 'Content-Type: application/json' -d '{"mirroringMode":"SELECTED_PROJECTS","projects":["PROJ"]}' %s/rest/mirroring/1.0/mirrorServers/%s/accept`,
		strings.TrimRight(st.UpstreamURL, "/"), st.ID)
}

// mirrorStatusJSON is the unauthenticated mirror status page.
type mirrorStatusJSON struct {
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
	Repos       []mirrorRepoJSON  `json:"repositories"`
	HostKey     map[string]string `json:"hostKey,omitempty"`
}

type mirrorRepoJSON struct {
	Project    string  `json:"project"`
	Slug       string  `json:"slug"`
	LastSync   string  `json:"lastSync,omitempty"`
	LagSeconds float64 `json:"lagSeconds"`
	LastError  string  `json:"lastError,omitempty"`
}

func mirrorStatusView(st mirror.Status) mirrorStatusJSON {
	v := mirrorStatusJSON{
		ID: st.ID, Name: st.Name, State: string(st.State), Mode: string(st.Mode), Projects: st.Projects,
		UpstreamURL: st.UpstreamURL, LastError: st.LastError, Syncing: st.Sync.Running, Paused: st.Sync.Paused,
		LagSeconds: st.Sync.Lag.Seconds(),
		Initial: map[string]any{
			"done": st.Sync.Initial.Done, "repositoriesTotal": st.Sync.Initial.ReposTotal,
			"repositoriesDone": st.Sync.Initial.ReposDone, "bytesDone": st.Sync.Initial.BytesDone,
		},
		Repos: []mirrorRepoJSON{},
	}
	if st.HostKeyChanged {
		v.HostKey = map[string]string{"problem": "the upstream's SSH host key changed; sync is stopped until it is trusted again"}
	}
	for _, r := range st.Sync.Repos {
		rj := mirrorRepoJSON{Project: r.Project, Slug: r.Slug, LagSeconds: r.Lag.Seconds(), LastError: r.LastError}
		if !r.LastSync.IsZero() {
			rj.LastSync = r.LastSync.UTC().Format(time.RFC3339)
		}
		v.Repos = append(v.Repos, rj)
	}
	return v
}

// mirrorSetupError explains a mirror setup that cannot be used, with the
// doctor's advice.
func mirrorSetupError(ctx context.Context, err error, home string, mcfg mirror.Config) error {
	var changed *mirror.SetupChangedError
	if errors.As(err, &changed) {
		return fmt.Errorf("%w; the home is %s", err, home)
	}
	advice := setupAdvice(ctx, mcfg)
	if advice == "" {
		advice = " (run `server -diagnose` for a step-by-step check)"
	} else {
		advice = "; the doctor says:" + advice
	}
	return fmt.Errorf("mirror setup failed: %w%s", err, advice)
}
