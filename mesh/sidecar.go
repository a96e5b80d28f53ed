package mesh

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// The file descriptors through which a Supervisor talks to its child: the child
// reads the hex token key (one line) from KeyFD and writes its listening address
// (one line, "127.0.0.1:port") to ReadyFD once it serves.
const (
	KeyFD   = 3
	ReadyFD = 4
)

// parentWatchEnv, set in a sidecar's environment by a Supervisor on a system
// without Pdeathsig, says that the Supervisor keeps KeyFD's pipe open for the
// child's whole life: the sidecar reads it to its end after the key, and that
// end (the supervising process is gone, crashed or killed) makes it shut down as
// if ctx had ended.
const parentWatchEnv = "GITFLEET_SIDECAR_WATCH_PARENT"

// SidecarConfig configures RunSidecar.
type SidecarConfig struct {
	// Root is the store root, <home>/shared/data/repositories. Required.
	Root string
	// Port is the port to listen on (127.0.0.1 only), with fallback to a free port
	// when it is taken. Zero means DefaultSidecarPort; negative is invalid.
	Port int
	// Logger receives the sidecar's log records; nil discards them.
	Logger *slog.Logger
	// Key is the token key. When nil, it is read from the inherited descriptor
	// KeyFD, as a Supervisor provides it.
	Key []byte
	// Ready, when set, receives the listening address instead of the inherited
	// descriptor ReadyFD.
	Ready io.Writer
	// MaxPushOptions, MaxPushOptionsBytes, SignedPushKeyring, LFSMaxObjectSize
	// and LFSGracePeriod configure the sidecar's Store as the StoreConfig fields
	// of the same names do.
	MaxPushOptions, MaxPushOptionsBytes int
	SignedPushKeyring                   string
	LFSMaxObjectSize                    int64
	LFSGracePeriod                      time.Duration
	// PackCacheMaxBytes, PackCacheMaxAge, PackCacheDir and MaxPackObjects
	// configure the sidecar's pack cache as the StoreConfig fields of the same
	// names do.
	PackCacheMaxBytes int64
	PackCacheMaxAge   time.Duration
	PackCacheDir      string
	MaxPackObjects    int
}

// RunSidecar is the body of a sidecar process, as started by a Supervisor (for
// example a "mesh-sidecar" subcommand of the server binary): it reads the token key
// from the inherited descriptor KeyFD, opens the store, listens on 127.0.0.1 (with
// port fallback), reports the bound address on descriptor ReadyFD, and serves until
// ctx ends (the caller cancels it on SIGTERM). It then shuts down gracefully,
// letting running git services finish (the supervisor kills the process at its
// deadline).
func RunSidecar(ctx context.Context, cfg SidecarConfig) error {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return fmt.Errorf("mesh: invalid sidecar port %d", cfg.Port)
	}
	port := cfg.Port
	if port == 0 {
		port = DefaultSidecarPort
	}
	key := cfg.Key
	if key == nil {
		f := os.NewFile(KeyFD, "sidecar-key")
		var err error
		var rest io.Reader
		if key, rest, err = readKey(f, os.Getenv(parentWatchEnv) != ""); err != nil {
			return err
		}
		if rest != nil {
			// Read the pipe to its end, which comes when the parent is gone. The
			// reader is left blocked when the sidecar ends first: its process is
			// about to exit.
			var stop context.CancelFunc
			ctx, stop = context.WithCancel(ctx)
			defer stop()
			go func() {
				io.Copy(io.Discard, rest)
				logger.Warn("mesh: the supervising process is gone; shutting down")
				stop()
			}()
		}
	}
	store, err := OpenStore(ctx, StoreConfig{Root: cfg.Root, Logger: logger,
		MaxPushOptions: cfg.MaxPushOptions, MaxPushOptionsBytes: cfg.MaxPushOptionsBytes,
		SignedPushKeyring: cfg.SignedPushKeyring, LFSMaxObjectSize: cfg.LFSMaxObjectSize, LFSGracePeriod: cfg.LFSGracePeriod,
		PackCacheMaxBytes: cfg.PackCacheMaxBytes, PackCacheMaxAge: cfg.PackCacheMaxAge,
		PackCacheDir: cfg.PackCacheDir, MaxPackObjects: cfg.MaxPackObjects})
	if err != nil {
		return err
	}
	defer store.Close()
	l, err := Listen(ctx, port, logger)
	if err != nil {
		return err
	}
	srv := &Server{Store: store, Key: key, Logger: logger}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	ready := cfg.Ready
	if ready == nil {
		f := os.NewFile(ReadyFD, "sidecar-ready")
		if f == nil {
			srv.Close()
			<-served
			return errors.New("mesh: sidecar has no ready descriptor")
		}
		defer f.Close()
		ready = f
	}
	if _, err := fmt.Fprintf(ready, "%s\n", l.Addr()); err != nil {
		srv.Close()
		<-served
		return fmt.Errorf("mesh: reporting the sidecar address: %w", err)
	}
	if f, ok := ready.(*os.File); ok {
		f.Close()
	}
	logger.Info("mesh: sidecar serving", "addr", l.Addr().String(), "root", cfg.Root, "pid", os.Getpid())
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("mesh: sidecar shutting down")
	err = srv.Shutdown(context.Background())
	<-served
	return err
}

// readKey reads a hex key line from f and closes it; with watch it leaves f open
// and returns the rest of it, to be read to its end.
func readKey(f *os.File, watch bool) (key []byte, rest io.Reader, err error) {
	if f == nil {
		return nil, nil, errors.New("mesh: sidecar has no key descriptor")
	}
	defer func() {
		if !watch || err != nil {
			f.Close()
		}
	}()
	br := bufio.NewReaderSize(f, 1024)
	line, err := br.ReadSlice('\n') // a line longer than the buffer is an error
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, nil, fmt.Errorf("mesh: reading the sidecar key: %w", err)
	}
	key, err = hex.DecodeString(strings.TrimSpace(string(line)))
	if err != nil || len(key) < 16 {
		return nil, nil, errors.New("mesh: the sidecar key is malformed")
	}
	if watch {
		return key, br, nil
	}
	return key, nil, nil
}
