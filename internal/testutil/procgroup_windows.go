package testutil

import "os/exec"

// SetProcessGroup does nothing on Windows, which has no process groups that a
// signal reaches.
func SetProcessGroup(cmd *exec.Cmd) {}

// KillProcessGroup kills a started cmd itself on Windows; its children end
// when their pipes close.
func KillProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		cmd.Process.Kill()
	}
}
