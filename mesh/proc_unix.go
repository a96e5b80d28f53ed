//go:build unix && !linux

package mesh

import (
	"os/exec"
	"syscall"
)

// hasPdeathsig is false outside Linux: no kernel attribute makes a child die
// with its parent, so the sidecar watches its key pipe instead (see
// parentWatchEnv), and a Store's git processes outlive a crashed store until
// their pipes close.
const hasPdeathsig = false

// setGitProcAttr leaves a git process as gitexec.Command made it.
func setGitProcAttr(cmd *exec.Cmd) {}

// setChildProcAttr makes a sidecar child the leader of its own process group.
func setChildProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}
