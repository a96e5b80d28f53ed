// Command portfwd is a TCP forwarder configured with an HAProxy
// configuration file (the TCP-mode subset that package portfwd reads).
//
//	portfwd -f haproxy.cfg               run until SIGTERM or SIGINT
//	portfwd -c -f haproxy.cfg            check the file and exit
//	portfwd -f haproxy.cfg -stats 127.0.0.1:9000
//
// Check mode exits as haproxy -c does: 0 when the file is valid (warnings
// allowed), 1 on any error, 2 when it is valid but declares no listener.
// Problems are printed as "file:line: message".
//
// Signals: SIGHUP reloads the file (binds that did not change keep their
// sockets, established connections continue); SIGTERM or SIGINT stops
// accepting and waits for connections to end (at most -grace, when set); a
// second SIGTERM or SIGINT closes them at once.
//
// With -stats ADDR, an HTTP server on ADDR serves the counters as JSON at /
// and in the Prometheus text format at /metrics.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gitfleet/gitfleet/portfwd"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sigs, nil))
}

// Exit codes, haproxy -c's.
const (
	exitOK         = 0
	exitError      = 1
	exitNoListener = 2
)

// run is the whole program. ready, when not nil, receives the forwarder once
// it listens (for tests).
func run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal, ready chan<- *portfwd.Forwarder) int {
	fs := flag.NewFlagSet("portfwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "configuration `file` (HAProxy syntax, TCP mode)")
	check := fs.Bool("c", false, "check the configuration and exit")
	statsAddr := fs.String("stats", "", "serve statistics on this `address` (JSON at /, Prometheus at /metrics)")
	grace := fs.Duration("grace", 0, "on SIGTERM, wait at most this long for connections to end (0: no bound)")
	quiet := fs.Bool("q", false, "log errors only")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: portfwd [-c] -f FILE [-stats ADDR] [-grace D] [-q]")
		return exitError
	}
	cfg, code := load(*file, stderr)
	if *check {
		switch code {
		case exitOK:
			fmt.Fprintln(stdout, "Configuration file is valid")
		case exitNoListener:
			fmt.Fprintln(stdout, "Configuration file has no error but will not start (no listener) => exit(2).")
		}
		return code
	}
	if code == exitError {
		return code
	}
	if code == exitNoListener {
		fmt.Fprintln(stderr, "portfwd: no listener: nothing to do")
		return code
	}

	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelError
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	fw, err := portfwd.New(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	ctx := context.Background()
	// Open the binds here rather than in ListenAndServe, so that a bind
	// that cannot be opened stops the program before it reports started.
	ls, err := cfg.Listen(ctx)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError
	}
	var serveErr error
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveErr = fw.Serve(ls...)
	}()
	defer func() {
		fw.Close()
		<-served
	}()
	if *statsAddr != "" {
		stop, err := serveStats(*statsAddr, fw, logger)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitError
		}
		defer stop()
	}
	logger.Info("portfwd started", "file", *file)
	if ready != nil {
		ready <- fw
	}
	for {
		var sig os.Signal
		select {
		case <-served:
			fmt.Fprintln(stderr, serveErr)
			return exitError
		case s, ok := <-sigs:
			if !ok {
				return exitOK
			}
			sig = s
		}
		if sig == syscall.SIGHUP {
			next, code := load(*file, stderr)
			if code != exitOK {
				logger.Error("reload refused: configuration has errors or no listener", "file", *file)
				continue
			}
			if err := fw.Reload(ctx, next); err != nil {
				logger.Error("reload failed", "err", err)
				continue
			}
			logger.Info("configuration reloaded", "file", *file)
			continue
		}
		logger.Info("draining connections", "signal", sig.String())
		return drain(fw, sigs, *grace, logger)
	}
}

// drain shuts fw down, waiting at most grace (0: no bound) or until another
// stop signal arrives.
func drain(fw *portfwd.Forwarder, sigs <-chan os.Signal, grace time.Duration, logger *slog.Logger) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if grace > 0 {
		ctx, cancel = context.WithTimeout(ctx, grace)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- fw.Shutdown(ctx) }()
	for {
		select {
		case err := <-done:
			if err != nil {
				logger.Warn("closing connections still open", "err", err)
			}
			fw.Close()
			return exitOK
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				cancel()
			}
		}
	}
}

// load parses file, printing its problems, and returns the exit code that
// check mode gives it.
func load(file string, stderr io.Writer) (*portfwd.Config, int) {
	cfg, err := portfwd.ParseFile(file)
	var cerr *portfwd.ConfigError
	switch {
	case errors.As(err, &cerr):
		for _, d := range cerr.Diagnostics {
			fmt.Fprintf(stderr, "%s: error: %s\n", d.Pos, d.Msg)
		}
		return nil, exitError
	case err != nil:
		fmt.Fprintln(stderr, err)
		return nil, exitError
	}
	for _, d := range cfg.Warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", d.Pos, d.Msg)
	}
	if cfg.Listeners() == 0 {
		return cfg, exitNoListener
	}
	return cfg, exitOK
}

// serveStats serves fw's statistics on addr until the returned function is
// called; that function closes the server and waits for it.
func serveStats(addr string, fw *portfwd.Forwarder, logger *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(fw.Stats())
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fw.Stats().WritePrometheus(w)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("stats server", "err", err)
		}
	}()
	logger.Info("serving statistics", "addr", ln.Addr().String())
	return func() {
		srv.Close()
		<-done
	}, nil
}
