package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/props"
)

// sidecarCommand is the subcommand the server re-executes itself with to run the
// storage sidecar.
const sidecarCommand = "mesh-sidecar"

// sidecarStartTimeout bounds the wait for the first sidecar to be ready.
const sidecarStartTimeout = 60 * time.Second

// meshNode is the running repository storage: a supervised sidecar process that
// alone touches repository files, and the client the node uses to reach it.
type meshNode struct {
	repos mesh.Repos
	state func() any
	stop  func()
}

// meshStateJSON is the reply of GET /rest/api/1.0/admin/mesh.
type meshStateJSON struct {
	State    string `json:"state"`
	Attempt  int    `json:"attempt,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Address  string `json:"address,omitempty"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"lastExit,omitempty"`
}

// startMesh starts the sidecar (this binary, re-executed as `server mesh-sidecar`)
// under a supervisor that restarts it when it dies, on
// plugin.bitbucket-git.mesh.sidecar.default-port or a free port when that is
// taken.
func startMesh(ctx context.Context, l layout, cfg *props.Config, logger *slog.Logger) (*meshNode, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("mesh: find this program to start the sidecar: %w", err)
	}
	format := "text"
	if _, ok := logger.Handler().(*slog.JSONHandler); ok {
		format = "json"
	}
	sup := &mesh.Supervisor{
		Command: func() *exec.Cmd {
			cmd := exec.Command(exe, sidecarCommand,
				"-root", l.Repos,
				"-port", strconv.Itoa(cfg.Mesh.SidecarDefaultPort),
				"-log-format", format)
			cmd.Env = sidecarEnv()
			cmd.Stdout = os.Stderr
			cmd.Stderr = os.Stderr
			return cmd
		},
		Logger: logger.With("component", "mesh"),
	}
	sctx, cancel := context.WithTimeout(ctx, sidecarStartTimeout)
	defer cancel()
	if err := sup.Start(sctx); err != nil {
		sup.Close()
		return nil, fmt.Errorf("mesh: the sidecar did not start: %w", err)
	}
	st := sup.State()
	logger.Info("mesh sidecar ready", "pid", st.PID, "addr", st.Addr, "configuredPort", cfg.Mesh.SidecarDefaultPort)
	return &meshNode{
		repos: sup.Client(),
		state: func() any {
			st := sup.State()
			return meshStateJSON{State: strings.ToUpper(string(st.Phase)), Attempt: st.Attempt, PID: st.PID,
				Address: st.Addr, Restarts: st.Restarts, LastExit: st.LastExit}
		},
		stop: func() {
			// Running git services were drained with the SSH server; give the
			// sidecar a short deadline of its own.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if err := sup.Shutdown(dctx); err != nil {
				logger.Warn("mesh sidecar shutdown", "err", err)
			}
		},
	}, nil
}

// sidecarEnv is the sidecar's environment: this process's, which the store
// sanitises again before it runs git.
func sidecarEnv() []string { return os.Environ() }

// runSidecarCommand is `server mesh-sidecar`: the body of the sidecar process.
func runSidecarCommand(args []string) int {
	fs := flag.NewFlagSet(sidecarCommand, flag.ContinueOnError)
	root := fs.String("root", "", "repository root (<home>/shared/data/repositories)")
	port := fs.Int("port", mesh.DefaultSidecarPort, "loopback port, with fallback to a free one")
	format := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	logger, err := newLogger(*format, os.Stderr)
	if err != nil || *root == "" {
		fmt.Fprintln(os.Stderr, "server mesh-sidecar: -root is required and -log-format must be text or json; this command is started by the server itself")
		return 2
	}
	logger = logger.With("component", "mesh-sidecar")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := mesh.RunSidecar(ctx, mesh.SidecarConfig{Root: *root, Port: *port, Logger: logger}); err != nil {
		logger.Error("sidecar stopped", "err", err)
		return 1
	}
	return 0
}
