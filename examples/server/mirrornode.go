package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/gitfleet/gitfleet/props"
)

var errMirrorUnavailable = errors.New("application.mode=mirror is not supported by this build yet")

func runMirrorNode(ctx context.Context, o options, l layout, cfg *props.Config, logger *slog.Logger, stdout io.Writer) error {
	return errMirrorUnavailable
}

func diagnose(home string, logger *slog.Logger, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "server:", errMirrorUnavailable)
	return 1
}
