package node

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/props"
)

// SidecarArg is the first argument with which a program that uses SidecarCommand
// is re-executed as the storage sidecar; its main must hand such a start to
// RunSidecarCommand before doing anything else.
const SidecarArg = "mesh-sidecar"

// sidecarStartTimeout bounds the wait for the first sidecar to be ready.
const sidecarStartTimeout = 60 * time.Second

// SidecarCommand returns a Node.Sidecar that re-executes the running program as
// `<program> mesh-sidecar -root <repositories> -port <port> -log-format <format>`,
// with this process's environment (the store sanitises it again before it runs
// git) and its standard output and error. jsonLogs chooses JSON log lines over
// text. A caller may append RunSidecarCommand's other flags to the command's
// Args (for example -signed-push-keyring DIR).
func SidecarCommand(root string, port int, jsonLogs bool) (func() *exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("mesh: find this program to start the sidecar: %w", err)
	}
	format := "text"
	if jsonLogs {
		format = "json"
	}
	return func() *exec.Cmd {
		cmd := exec.Command(exe, SidecarArg, "-root", root, "-port", strconv.Itoa(port), "-log-format", format)
		cmd.Env = os.Environ()
		cmd.Stdout = os.Stderr
		cmd.Stderr = os.Stderr
		return cmd
	}, nil
}

// RunSidecarCommand is the body of a sidecar started by SidecarCommand: args are
// the arguments after SidecarArg. It serves until SIGTERM or SIGINT and returns
// the process's exit code. Besides the flags SidecarCommand passes, it takes
// -signed-push-keyring, -max-push-options, -max-push-options-bytes,
// -lfs-max-object-size and -lfs-grace-period, the mesh.SidecarConfig fields of
// those names (StorageFlags gives the last two from a configuration), and the
// pack cache's flags that PackCacheArgs makes.
func RunSidecarCommand(args []string) int {
	fs := flag.NewFlagSet(SidecarArg, flag.ContinueOnError)
	root := fs.String("root", "", "repository root (<home>/shared/data/repositories)")
	port := fs.Int("port", mesh.DefaultSidecarPort, "loopback port, with fallback to a free one")
	format := fs.String("log-format", "text", "log format: text or json")
	keyring := fs.String("signed-push-keyring", "", "GnuPG home with the keys push certificates are verified against")
	maxOptions := fs.Int("max-push-options", 0, "push options one push may carry (0: the default; negative: none)")
	maxOptionsBytes := fs.Int("max-push-options-bytes", 0, "bytes one push's options may hold in all (0: the default)")
	lfsMax := fs.Int64("lfs-max-object-size", 0, "largest Git LFS object accepted, in bytes (0: the default; negative: no limit)")
	lfsGrace := fs.Duration("lfs-grace-period", 0, "how long an LFS object no ref reaches is kept (0: the default; negative: always)")
	packCacheMaxBytes := fs.Int64("pack-cache-max-bytes", 0, "size limit of the pack cache (0: the default; negative: no cache)")
	packCacheMaxAge := fs.Duration("pack-cache-max-age", 0, "how long an unused cached pack is kept (0: the default)")
	packCacheDir := fs.String("pack-cache-dir", "", "directory of the pack cache (empty: <root>/.mesh/pack-cache)")
	maxPackObjects := fs.Int("max-pack-objects", 0, "uncached pack-objects runs at once per repository (0: the number of CPUs; negative: no bound)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var h slog.Handler
	switch *format {
	case "text":
		h = slog.NewTextHandler(os.Stderr, nil)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	if h == nil || *root == "" {
		fmt.Fprintln(os.Stderr, SidecarArg+": -root is required and -log-format must be text or json; this command is started by the server itself")
		return 2
	}
	logger := slog.New(h).With("component", "mesh-sidecar")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := mesh.RunSidecar(ctx, mesh.SidecarConfig{Root: *root, Port: *port, Logger: logger,
		SignedPushKeyring: *keyring, MaxPushOptions: *maxOptions, MaxPushOptionsBytes: *maxOptionsBytes,
		LFSMaxObjectSize: *lfsMax, LFSGracePeriod: *lfsGrace,
		PackCacheMaxBytes: *packCacheMaxBytes, PackCacheMaxAge: *packCacheMaxAge, PackCacheDir: *packCacheDir,
		MaxPackObjects: *maxPackObjects}); err != nil {
		logger.Error("sidecar stopped", "err", err)
		return 1
	}
	return 0
}

// StorageFlags returns the RunSidecarCommand flags that carry cfg's storage
// settings (plugin.gitfleet.lfs.max-object-size and .grace-period) to a
// sidecar, for a Node.Sidecar command to append; an in-process store reads
// them from Node.Config itself.
func StorageFlags(cfg *props.Config) []string {
	return []string{"-lfs-max-object-size", strconv.FormatInt(cfg.Mesh.LFSMaxObjectSize, 10),
		"-lfs-grace-period", cfg.Mesh.LFSGracePeriod.String()}
}

// startStorage makes the node's repository storage ready: Node.Repos as given,
// a supervised sidecar, or an in-process store.
func (n *Node) startStorage(ctx context.Context) (mesh.Repos, func(), error) {
	switch {
	case n.Repos != nil:
		return n.Repos, func() {}, nil
	case n.Sidecar == nil:
		maxBytes, maxAge, dir, perRepo := packCacheConfig(n.Config.Mesh)
		st, err := mesh.OpenStore(ctx, mesh.StoreConfig{Root: n.Home.RepositoriesDir(), Logger: n.log.With("component", "mesh"),
			LFSMaxObjectSize: n.Config.Mesh.LFSMaxObjectSize, LFSGracePeriod: n.Config.Mesh.LFSGracePeriod,
			PackCacheMaxBytes: maxBytes, PackCacheMaxAge: maxAge, PackCacheDir: dir, MaxPackObjects: perRepo})
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	sup := &mesh.Supervisor{Command: n.Sidecar, Logger: n.log.With("component", "mesh")}
	sctx, cancel := context.WithTimeout(ctx, sidecarStartTimeout)
	defer cancel()
	if err := sup.Start(sctx); err != nil {
		sup.Close()
		return nil, nil, fmt.Errorf("mesh: the sidecar did not start: %w", err)
	}
	st := sup.State()
	n.log.Info("mesh sidecar ready", "pid", st.PID, "addr", st.Addr, "configuredPort", n.Config.Mesh.SidecarDefaultPort)
	n.mu.Lock()
	n.sup = sup
	n.mu.Unlock()
	return sup.Client(), func() {
		// Running git services were drained with the SSH server; give the
		// sidecar a short deadline of its own.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sup.Shutdown(dctx); err != nil {
			n.log.Warn("mesh sidecar shutdown", "err", err)
		}
	}, nil
}

// packCacheConfig turns the plugin.bitbucket-git.mesh.pack-cache.* and
// pack-objects keys into mesh.StoreConfig's pack cache fields: a disabled cache
// is a negative size limit.
func packCacheConfig(m props.MeshConfig) (maxBytes int64, maxAge time.Duration, dir string, perRepo int) {
	maxBytes = m.PackCacheMaxSize
	if !m.PackCacheEnabled {
		maxBytes = -1
	}
	return maxBytes, m.PackCacheMaxAge, m.PackCacheDir, m.PackObjectsPerRepository
}

// PackCacheArgs returns the RunSidecarCommand flags that give a sidecar the
// pack cache m configures (plugin.bitbucket-git.mesh.pack-cache.* and
// plugin.bitbucket-git.mesh.pack-objects.max-per-repository), to append to a
// SidecarCommand's Args.
func PackCacheArgs(m props.MeshConfig) []string {
	maxBytes, maxAge, dir, perRepo := packCacheConfig(m)
	args := []string{"-pack-cache-max-bytes", strconv.FormatInt(maxBytes, 10),
		"-pack-cache-max-age", maxAge.String(), "-max-pack-objects", strconv.Itoa(perRepo)}
	if dir != "" {
		args = append(args, "-pack-cache-dir", dir)
	}
	return args
}
