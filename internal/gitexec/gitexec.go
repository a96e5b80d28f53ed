package gitexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// MinMajor and MinMinor give the oldest git gitfleet works with: 2.31 brought
// `fetch --atomic` and the `reference-transaction` hook that the store relies on.
const (
	MinMajor = 2
	MinMinor = 31
)

// WaitDelay is how long a cancelled command's pipes may stay open after the process
// group has been killed before Wait gives up on them.
const WaitDelay = 5 * time.Second

// TermGrace is how long a cancelled command's process group has between SIGTERM and
// SIGKILL. Git removes its lock files when it dies of SIGTERM (SIGKILL leaves them,
// and a stale ref lock refuses every later update of that ref), so a push cut short
// by its client ends as it would under OpenSSH, where git sees the pipe close.
const TermGrace = 2 * time.Second

// ErrTooOld is returned (wrapped) by CheckVersion when git is older than MinMajor.MinMinor.
var ErrTooOld = errors.New("gitexec: git is too old")

// Error is returned when git exits non-zero. Its message includes the (trimmed)
// stderr of the command so that the reason reaches logs.
type Error struct {
	Args   []string // the git arguments, without "git"
	Code   int      // exit status; -1 when the process was killed by a signal
	Stderr string   // what git printed on stderr, trimmed
	Err    error    // the underlying error from os/exec
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("git %s: %v", strings.Join(e.Args, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// ExitCode returns git's exit status (-1 when it was killed by a signal).
func (e *Error) ExitCode() int { return e.Code }

func (e *Error) Unwrap() error { return e.Err }

// inherited lists the environment variables a git child process may inherit.
// Everything else, in particular every GIT_* variable, is dropped.
var inherited = []string{"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR"}

// Env returns a sanitised environment for a git child process: a few harmless
// variables from the current environment, settings that keep git away from any
// system or user configuration and from terminal prompts, then extra (which may
// override them; later entries win).
func Env(extra ...string) []string {
	env := make([]string, 0, len(inherited)+8+len(extra))
	for _, k := range inherited {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	env = append(env,
		"HOME=/nonexistent",
		"XDG_CONFIG_HOME=/nonexistent",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false",
		"SSH_ASKPASS=/bin/false",
		"GIT_NO_REPLACE_OBJECTS=1",
	)
	return append(env, extra...)
}

// Command returns an *exec.Cmd that runs git with args in dir (the current
// directory when empty) under the sanitised environment of Env(extraEnv...). On
// Unix the process gets a process group of its own; when ctx ends the whole group
// gets SIGTERM, and SIGKILL TermGrace later if git is still running, so hooks and
// helpers such as ssh do not outlive it and git can remove its lock files. On
// Windows, which has neither, git itself is killed when ctx ends.
func Command(ctx context.Context, dir string, extraEnv []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = Env(extraEnv...)
	setGroup(cmd)
	cmd.Cancel = func() error { return TerminateGroup(cmd, TermGrace) }
	cmd.WaitDelay = WaitDelay
	return cmd
}

// Run runs git with args in dir, feeding it stdin (may be nil), and returns its
// standard output. A non-zero exit is returned as *Error carrying stderr.
func Run(ctx context.Context, dir string, stdin io.Reader, args ...string) ([]byte, error) {
	return RunEnv(ctx, dir, nil, stdin, args...)
}

// RunEnv is Run with extra environment variables.
func RunEnv(ctx context.Context, dir string, env []string, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := Command(ctx, dir, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), Wrap(args, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// Wrap turns an error from running git into *Error with the given stderr. It returns
// nil for a nil err.
func Wrap(args []string, err error, stderr string) error {
	if err == nil {
		return nil
	}
	code := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	return &Error{Args: args, Code: code, Stderr: strings.TrimSpace(stderr), Err: err}
}

// Version is a git version number.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// ParseVersion parses the output of `git version`, such as "git version 2.39.5" or
// "git version 2.45.1.windows.1".
func ParseVersion(s string) (Version, error) {
	f := strings.Fields(strings.TrimSpace(s))
	if len(f) < 3 || f[0] != "git" || f[1] != "version" {
		return Version{}, fmt.Errorf("gitexec: unrecognised git version output %q", s)
	}
	parts := strings.SplitN(f[2], ".", 4)
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("gitexec: unrecognised git version %q", f[2])
	}
	var nums [3]int
	for i := 0; i < 3 && i < len(parts); i++ {
		digits := parts[i]
		if j := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
			digits = digits[:j]
		}
		n, err := strconv.Atoi(digits)
		if err != nil {
			if i < 2 {
				return Version{}, fmt.Errorf("gitexec: unrecognised git version %q", f[2])
			}
			break
		}
		nums[i] = n
	}
	return Version{nums[0], nums[1], nums[2]}, nil
}

// CheckVersion runs `git version` and returns the version found. It fails, with an
// error wrapping ErrTooOld that says "git >= 2.31 is required, found X", when git is
// older than MinMajor.MinMinor, and with a clear error when git is not installed.
func CheckVersion(ctx context.Context) (Version, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return Version{}, fmt.Errorf("gitexec: git >= %d.%d is required, and no git was found in PATH: %w", MinMajor, MinMinor, err)
	}
	out, err := Run(ctx, "", nil, "version")
	if err != nil {
		return Version{}, err
	}
	v, err := ParseVersion(string(out))
	if err != nil {
		return Version{}, err
	}
	if err := Require(v); err != nil {
		return v, err
	}
	return v, nil
}

// Require returns an error wrapping ErrTooOld when v is older than MinMajor.MinMinor.
func Require(v Version) error {
	if v.Less(Version{Major: MinMajor, Minor: MinMinor}) {
		return fmt.Errorf("%w: git >= %d.%d is required, found %s", ErrTooOld, MinMajor, MinMinor, v)
	}
	return nil
}
