//go:build unix

package testutil

import (
	"os/exec"
	"syscall"
)

// SetProcessGroup makes cmd, before it starts, the leader of a process group
// of its own, so that KillProcessGroup reaches its children too.
func SetProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// KillProcessGroup sends SIGKILL to the process group of a started cmd that
// SetProcessGroup prepared.
func KillProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
