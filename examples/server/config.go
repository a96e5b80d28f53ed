package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/node"
	"github.com/gitfleet/gitfleet/props"
)

// configError is a configuration that cannot be used; its message lists every
// problem with its source and fix.
type configError struct{ problems props.Problems }

func (e *configError) Error() string {
	return "the configuration has errors:\n" + indent(e.problems.Errors().Error())
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// loadConfig reads the properties and the environment into a validated Config.
// Warnings are logged; errors are returned as *configError.
func loadConfig(ctx context.Context, home string, logger *slog.Logger) (*props.Properties, *props.Config, error) {
	p, err := props.Load(ctx, home, props.LoadOptions{Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	cfg, problems := props.Check(p)
	problems = append(problems, node.CheckSSHFiles(cfg)...)
	if mirrorNeedsSetup(cfg) {
		// The setup wizard asks for these (wizard.go).
		problems = slices.DeleteFunc(problems, func(pr props.Problem) bool { return wizardKeys[pr.Key] })
	}
	for _, w := range problems.Warnings() {
		logger.Warn("configuration", "problem", w.String())
	}
	if len(problems.Errors()) > 0 {
		return p, cfg, &configError{problems}
	}
	return p, cfg, nil
}

// dumpProperties prints the effective raw properties as one JSON object with sorted
// keys. Validation problems go to stderr and do not change the exit code; only a
// file that cannot be read or parsed does.
func dumpProperties(home string, stdout, stderr io.Writer) int {
	p, err := props.Load(context.Background(), home, props.LoadOptions{})
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 1
	}
	obj := map[string]string{}
	for _, e := range p.Entries() {
		obj[e.Key] = e.Value
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 1
	}
	if _, problems := props.Check(p); len(problems) > 0 {
		fmt.Fprintln(stderr, "configuration problems:")
		fmt.Fprintln(stderr, indent(problems.Error()))
	}
	return 0
}

// checkConfig validates the configuration and prints every problem with its source
// and fix: exit 0 when there are no errors (warnings allowed), else 1.
func checkConfig(home string, stdout, stderr io.Writer) int {
	p, err := props.Load(context.Background(), home, props.LoadOptions{})
	if err != nil {
		fmt.Fprintln(stderr, "server:", err)
		return 1
	}
	cfg, problems := props.Check(p)
	problems = append(problems, node.CheckSSHFiles(cfg)...) // the files the SSH keys name
	for _, pr := range problems {
		fmt.Fprintln(stdout, pr.String())
	}
	if n := len(problems.Errors()); n > 0 {
		fmt.Fprintf(stdout, "%d error(s), %d warning(s): the configuration is not valid\n", n, len(problems.Warnings()))
		return 1
	}
	fmt.Fprintf(stdout, "configuration OK (%d warning(s)); properties: %s\n", len(problems.Warnings()), gitfleet.Home(home).PropertiesFile())
	return 0
}
