//go:build unix

package gitexec

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// setGroup makes git the leader of a process group of its own, so that
// TerminateGroup and KillGroup reach its hooks and helpers too.
func setGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// TerminateGroup sends SIGTERM to the process group of a command started by Command
// and, grace later, SIGKILL to whatever is left of the group (members that ignore
// SIGTERM, or git itself when it is stuck). Process ids are allocated cyclically up to
// pid_max, so the group id cannot name another group within the grace.
func TerminateGroup(cmd *exec.Cmd, grace time.Duration) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	if err != nil {
		return err
	}
	time.AfterFunc(grace, func() { KillGroup(cmd) })
	return nil
}

// KillGroup sends SIGKILL to the process group of a command started by Command.
func KillGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
