package main

import (
	"context"
	"fmt"
	"io"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/node"
	"github.com/gitfleet/gitfleet/props"
)

// diagnose is `server -diagnose`: it runs the mirror doctor for the mirror in home
// (node.Diagnose) and prints the report as a table; exit 0 when every check
// passes, else 1.
func diagnose(home string, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), node.DiagnoseTimeout)
	defer cancel()
	p, err := props.Load(ctx, home, props.LoadOptions{})
	if err != nil {
		fmt.Fprintln(stderr, "server: -diagnose:", err)
		return 1
	}
	cfg, _ := props.Check(p) // the doctor explains setup problems itself
	report, err := node.Diagnose(ctx, gitfleet.Home(home), cfg)
	if err != nil {
		fmt.Fprintln(stderr, "server: -diagnose:", err)
		return 1
	}
	report.WriteTable(stdout)
	if !report.OK() {
		return 1
	}
	return 0
}
