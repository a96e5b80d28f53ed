package mesh

import (
	"os/exec"
	"syscall"
)

// hasPdeathsig says that a child can be made to die with its parent by the
// kernel (Pdeathsig): the Supervisor's child and the Store's git processes get
// it, and the sidecar need not watch its parent.
const hasPdeathsig = true

// setGitProcAttr makes a git process started by gitexec.Command (which gives
// it its own process group) die with this process.
func setGitProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// setChildProcAttr makes a sidecar child the leader of its own process group
// and has it die with this process.
func setChildProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
