package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/node"
	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/sshserve"
)

// drainTimeout bounds the drain of SSH sessions and HTTP requests at shutdown.
const drainTimeout = 60 * time.Second

// runNode runs a primary or a mirror, as application.mode says, until ctx ends,
// then drains and stops it. The node (package node) does the assembly; the
// example adds its database, its users and permissions, and its REST API.
func runNode(ctx context.Context, o options, logger *slog.Logger, stdout io.Writer) error {
	home := gitfleet.Home(o.home)
	for _, d := range []string{home.DataDir(), home.ConfigDir()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	_, cfg, err := loadConfig(ctx, o.home, logger)
	if err != nil {
		return err
	}
	logger.Info("starting "+modeName(cfg), "home", o.home, "version", version)
	db, err := openDB(home.DBFile())
	if err != nil {
		return err
	}
	defer db.Close()
	a := &app{st: newBoltState(db), log: logger, now: time.Now, sshBase: cfg.SSHBaseURL()}
	firstStart, generated, err := a.ensureAdmin(ctx, adminSetup{
		Username: cfg.Setup.Sysadmin.Username, Password: cfg.Setup.Sysadmin.Password,
	}, home.ConfigDir())
	if err != nil {
		return err
	}
	a.ui = newWebUI(a, modeName(cfg))
	if mirrorNeedsSetup(cfg) {
		if generated != "" {
			fmt.Fprintf(stdout, "\nThis mirror has no setup yet. Sign in at %s/setup as %q with password %s\n(generated once; also in %s, mode 0600).\n\n",
				cfg.PublicBaseURL(), a.adminUser(ctx), generated, filepath.Join(home.ConfigDir(), adminPasswordFile))
		}
		if err := a.runSetupWizard(ctx, cfg, home, a.ui); err != nil {
			if ctx.Err() != nil {
				return nil // stopped before the setup was done
			}
			return err
		}
		if _, cfg, err = loadConfig(ctx, o.home, logger); err != nil {
			return err
		}
		a.sshBase = cfg.SSHBaseURL()
	}
	_, jsonLogs := logger.Handler().(*slog.JSONHandler)
	sidecar, err := node.SidecarCommand(home.RepositoriesDir(), cfg.Mesh.SidecarDefaultPort, jsonLogs)
	if err != nil {
		return err
	}
	base, storageArgs := sidecar, append(node.PackCacheArgs(cfg.Mesh), node.StorageFlags(cfg)...)
	sidecar = func() *exec.Cmd { // with the pack cache's and Git LFS's properties
		cmd := base()
		cmd.Args = append(cmd.Args, storageArgs...)
		return cmd
	}
	keyring := signedPushKeyring(home)
	sidecar = withKeyring(sidecar, keyring)
	if keyring != "" {
		logger.Info("signed pushes are verified against a keyring", "keyring", keyring)
	} else {
		logger.Info("no keyring for signed pushes: certificates are passed on unverified", "keyring", filepath.Join(home.ConfigDir(), keyringDirName))
	}
	defer a.wg.Wait() // the event logger ends with the node
	n := &node.Node{
		Home:              home,
		Config:            cfg,
		Logger:            logger,
		Sidecar:           sidecar,
		State:             mirror.NewBoltState(db),
		PublicKeyCallback: a.principalFor,
		// A certificate from plugin.ssh.trusted.user.ca.keys logs in as the
		// user its principal names.
		CertificateCallback: sshserve.PrincipalsCallback(a.userByName),
		Authorizer:          a.authorize,
		Admin:               a.isAdmin,
		Handler:             a.routes(),
		GitBackend:          a.gitBackend,
		Setup: func(ctx context.Context, repos mesh.Repos) error {
			a.repos = repos
			if err := a.logPushes(ctx, repos); err != nil {
				return err
			}
			return a.removeUnrecorded(ctx)
		},
		DrainTimeout: drainTimeout,
	}
	if cfg.Mode == props.ModeMirror {
		// A mirror's repositories and readers are the upstream's: only the
		// storage state is the example's to show.
		n.PublicKeyCallback, n.CertificateCallback, n.Authorizer, n.Handler, n.GitBackend = nil, nil, nil, a.mirrorRoutes(), nil
		n.Setup = func(ctx context.Context, repos mesh.Repos) error { a.repos = repos; return nil }
	}
	a.node = n

	served := make(chan error, 1)
	go func() { served <- n.ListenAndServe() }()
	select {
	case err := <-served:
		return err // it failed to start
	case <-n.Ready():
	}
	if firstStart && cfg.Mode != props.ModeMirror {
		printFirstSteps(stdout, cfg, a.adminUser(ctx), generated, home)
	}
	select {
	case err := <-served:
		if !errors.Is(err, node.ErrServerClosed) {
			return err
		}
		return nil
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining SSH sessions and HTTP requests", "deadline", drainTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	if err := n.Shutdown(sctx); err != nil {
		n.Close()
	}
	if err := <-served; !errors.Is(err, node.ErrServerClosed) {
		return err
	}
	return nil
}

func modeName(cfg *props.Config) string {
	if cfg.Mode == props.ModeMirror {
		return "mirror"
	}
	return "primary"
}

// removeUnrecorded deletes store repositories that the database does not know: a
// creation that crashed before it was recorded.
func (a *app) removeUnrecorded(ctx context.Context) error {
	stored, err := a.repos.List(ctx)
	if err != nil {
		return err
	}
	for _, r := range stored {
		if _, err := a.st.Repo(ctx, r.Project, r.Slug); err == nil {
			continue
		} else if !errors.Is(err, errNotFound) {
			return err
		}
		a.log.Warn("removing a repository that was never recorded (creation interrupted)", "project", r.Project, "slug", r.Slug)
		if err := a.repos.Delete(ctx, r.Project, r.Slug); err != nil {
			return err
		}
	}
	return nil
}
