//go:build unix

package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestLFSThroughTheServer: the example server (its sidecar included) serves Git
// LFS to git-lfs 3.3, with the object size limit of its properties
// (plugin.gitfleet.lfs.max-object-size, here through the environment): an object
// under the limit goes up and comes back in a clone, one over it is refused
// with the limit in the message.
func TestLFSThroughTheServer(t *testing.T) {
	n := startNode(t, testutil.ServerOptions{Env: []string{"PLUGIN_GITFLEET_LFS_MAX_OBJECT_SIZE=64k"}})
	g, _ := setupUserRepo(t, n)
	g.InstallLFS(t)
	work := t.TempDir()
	w := filepath.Join(work, "w")
	g.Run(work, "clone", "-q", n.SSHURL("PROJ", "repo"), "w")
	g.Run(w, "lfs", "track", "*.bin")
	small := make([]byte, 32<<10)
	rand.Read(small)
	if err := os.WriteFile(filepath.Join(w, "small.bin"), small, 0o644); err != nil {
		t.Fatal(err)
	}
	g.Run(w, "add", ".gitattributes", "small.bin")
	g.Run(w, "commit", "-q", "-m", "small")
	g.Run(w, "push", "-q", "origin", "HEAD:main")
	c := filepath.Join(work, "c")
	g.Run(work, "clone", "-q", n.SSHURL("PROJ", "repo"), "c")
	if got, err := os.ReadFile(filepath.Join(c, "small.bin")); err != nil || string(got) != string(small) {
		t.Fatalf("small.bin in a clone: %d bytes, %v", len(got), err)
	}

	big := make([]byte, 100<<10)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(w, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	g.Run(w, "add", "big.bin")
	g.Run(w, "commit", "-q", "-m", "big")
	_, err := g.TryRun(w, "push", "origin", "HEAD:main")
	if err == nil || !strings.Contains(err.Error(), "limit of 65536") {
		t.Fatalf("push of an object over the limit: %v", err)
	}
}
