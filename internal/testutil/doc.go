// Package testutil holds the fixtures gitfleet's tests share: loopback ports, home
// directories laid out as a node expects, SSH keys of every type, a deterministic
// synthetic repository generator, drivers for the real git, ssh and sshd programs
// isolated from the machine's configuration, and a goroutine-leak check for TestMain.
//
// Tests that need a system program call Require (or one of the drivers, which call
// it): the test is skipped with a clear message when the program is missing, and
// fails instead when GITFLEET_INTEROP=require, which CI sets.
//
// # Operating systems
//
// The fixtures build everywhere. ServerNode puts the server in a process group
// of its own on Unix and kills the group (SetProcessGroup, KillProcessGroup);
// on Windows it kills the server process alone. The drivers need the git, ssh
// and sshd programs, which Require skips without; the goroutine-leak check runs
// everywhere.
package testutil
