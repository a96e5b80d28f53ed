// Command server runs a complete gitfleet node: a primary Git hosting server, or,
// with application.mode=mirror, a smart mirror of one.
//
// Usage:
//
//	server [-home DIR] [-log-format text|json]   run the node
//	server -check-config                          validate the configuration and exit
//	server -dump-properties                       print the effective properties as JSON
//	server -diagnose                              (mirror) run the mirror doctor
//	server -version                               print the version
//
// The home directory is -home, else $GITFLEET_HOME, else ./gitfleet-home. The node
// reads <home>/shared/bitbucket.properties (optional) and environment overrides
// such as SERVER_PORT and PLUGIN_SSH_PORT.
//
// The administrator's pages are on the HTTP port, behind a sign-in: on a
// primary, / (projects, repositories and clone URLs) and /admin/mirrors
// (authorization requests, project selection, removal); on a mirror, / (its
// status: initial sync and each repository's lag), and /setup, the setup
// wizard, while it runs without setup.baseUrl and
// plugin.mirroring.upstream.url. The REST API under /rest takes HTTP Basic.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/node"
)

// version is the server's version; release builds set it with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// options are the command-line settings.
type options struct {
	home           string
	logFormat      string
	checkConfig    bool
	dumpProperties bool
	diagnose       bool
	showVersion    bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == node.SidecarArg {
		os.Exit(node.RunSidecarCommand(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args and runs the node or the requested one-shot command, returning
// the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.home, "home", "", "home directory (default $GITFLEET_HOME, else ./gitfleet-home)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&o.checkConfig, "check-config", false, "validate the configuration, print every problem, and exit 0 (valid) or 1")
	fs.BoolVar(&o.dumpProperties, "dump-properties", false, "print the effective properties (file plus environment) as JSON and exit")
	fs.BoolVar(&o.diagnose, "diagnose", false, "run the mirror doctor, print its report, and exit 0 (all checks pass) or 1")
	fs.BoolVar(&o.showVersion, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "server: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.showVersion {
		fmt.Fprintf(stdout, "gitfleet server %s\n", version)
		return 0
	}
	logger, err := newLogger(o.logFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 2
	}
	o.home = resolveHome(o.home)

	switch {
	case o.dumpProperties:
		return dumpProperties(o.home, stdout, stderr)
	case o.checkConfig:
		return checkConfig(o.home, stdout, stderr)
	case o.diagnose:
		return diagnose(o.home, stdout, stderr)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// A second signal, after the first has started the drain, exits at once.
	go func() {
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGINT, syscall.SIGTERM)
		<-again
		fmt.Fprintln(stderr, "server: second signal, exiting at once")
		os.Exit(1)
	}()
	if err := runNode(ctx, o, logger, stdout); err != nil {
		logger.Error("server stopped", "err", err)
		fmt.Fprintln(stderr, "server:", err)
		return 1
	}
	logger.Info("server stopped")
	return 0
}

// resolveHome applies the home directory rule: -home, else $GITFLEET_HOME, else
// ./gitfleet-home; the result is absolute.
func resolveHome(flagHome string) string {
	home := gitfleet.ResolveHome(flagHome, os.LookupEnv).Dir()
	if abs, err := filepath.Abs(home); err == nil {
		home = abs
	}
	return home
}

func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("-log-format must be text or json, not %q", format)
}
