package testutil

import "testing"

// InstallLFS sets up Git LFS's filters in the driver's isolated HOME (git lfs
// install --skip-repo), so that clones and checkouts fetch LFS objects. It skips
// the test (fails under GITFLEET_INTEROP=require) when git-lfs is missing.
func (g *Git) InstallLFS(t testing.TB) {
	t.Helper()
	Require(t, "git-lfs")
	g.Run("", "lfs", "install", "--skip-repo")
}
