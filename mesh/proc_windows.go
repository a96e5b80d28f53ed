package mesh

import (
	"os/exec"
	"syscall"
)

// inheritsPipes is false: os/exec passes no ExtraFiles on Windows, so a push
// holds the repository's write lock throughout (see openGate).
const inheritsPipes = false

// hasPdeathsig is false on Windows, which has no such attribute.
const hasPdeathsig = false

// setGitProcAttr leaves a git process as gitexec.Command made it.
func setGitProcAttr(cmd *exec.Cmd) {}

// setChildProcAttr does nothing: a Supervisor never starts a child on Windows.
func setChildProcAttr(cmd *exec.Cmd) {}

// signal kills the child (Windows has no signals to send it).
func (c *child) signal(sig syscall.Signal) {
	if c.cmd.Process != nil {
		c.cmd.Process.Kill()
	}
}

// supervisorSupported reports ErrSupervisorUnsupported.
func supervisorSupported() error { return ErrSupervisorUnsupported }
