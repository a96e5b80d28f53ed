package main

import (
	"fmt"
	"io"
	"log/slog"
)

func diagnose(home string, logger *slog.Logger, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "server: -diagnose is not part of this build yet")
	return 1
}
