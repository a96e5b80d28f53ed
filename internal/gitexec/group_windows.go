package gitexec

import (
	"os/exec"
	"time"
)

// setGroup does nothing on Windows, which has no process groups that a signal
// could reach: TerminateGroup and KillGroup end git itself.
func setGroup(cmd *exec.Cmd) {}

// TerminateGroup ends a command started by Command. Windows has no SIGTERM and
// no process groups to signal, so git is killed at once (grace is unused) and
// processes it started, such as hooks, are left to end by themselves when
// their pipes close.
func TerminateGroup(cmd *exec.Cmd, grace time.Duration) error {
	return KillGroup(cmd)
}

// KillGroup kills a command started by Command: on Windows, git itself.
func KillGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
