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
)

// The file descriptors through which a Supervisor talks to its child: the child
// reads the hex token key (one line) from KeyFD and writes its listening address
// (one line, "127.0.0.1:port") to ReadyFD once it serves.
const (
	KeyFD   = 3
	ReadyFD = 4
)

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
		var err error
		if key, err = readKey(os.NewFile(KeyFD, "sidecar-key")); err != nil {
			return err
		}
	}
	store, err := OpenStore(ctx, StoreConfig{Root: cfg.Root, Logger: logger})
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

// readKey reads a hex key line from f and closes it.
func readKey(f *os.File) ([]byte, error) {
	if f == nil {
		return nil, errors.New("mesh: sidecar has no key descriptor")
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 1024)).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("mesh: reading the sidecar key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(line))
	if err != nil || len(key) < 16 {
		return nil, errors.New("mesh: the sidecar key is malformed")
	}
	return key, nil
}
