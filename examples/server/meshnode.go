package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/props"
)

const sidecarCommand = "mesh-sidecar"

// meshNode is the running repository storage.
type meshNode struct {
	repos mesh.Repos
	state func() any
	stop  func()
}

// startMesh opens the repository store. (In-process for now; the supervised
// sidecar replaces it.)
func startMesh(ctx context.Context, l layout, cfg *props.Config, logger *slog.Logger) (*meshNode, error) {
	st, err := mesh.OpenStore(ctx, mesh.StoreConfig{Root: l.Repos, Logger: logger})
	if err != nil {
		return nil, err
	}
	return &meshNode{repos: st, stop: func() { st.Close() }}, nil
}

func runSidecarCommand(args []string) int {
	fmt.Fprintln(os.Stderr, "server: the mesh sidecar is not part of this build yet")
	return 2
}
