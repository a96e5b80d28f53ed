// Package gitexec runs the git binary safely: explicit argument lists, a sanitised
// environment that ignores the user's and the system's git configuration, a context
// that kills the whole process group on cancel, and errors that carry git's stderr.
//
// Every gitfleet package that runs git goes through this package.
//
// # Operating systems
//
// On Unix (Linux, macOS, FreeBSD) git leads a process group of its own, and a
// cancelled command's whole group gets SIGTERM, then SIGKILL TermGrace later.
// Windows has neither process groups that a signal reaches nor SIGTERM: there a
// cancelled command's git process is killed at once, and the processes it
// started (hooks, ssh) end when their pipes close.
package gitexec
