package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// The git services ServeGit runs.
const (
	ServiceUploadPack    = "git-upload-pack"
	ServiceReceivePack   = "git-receive-pack"
	ServiceUploadArchive = "git-upload-archive"
)

// ServeGit runs a git service for repo ("PROJECT/slug", optionally "/PROJECT/slug.git")
// wired to the caller's streams, with no framing on the bytes. Of env only a valid
// GIT_PROTOCOL ("version=0", "version=1" or "version=2") is passed to git; anything
// else is dropped. upload-pack holds the repository's read lock while git writes
// its ref advertisement (v0/v1) or its reply to a v2 ls-refs command, which is
// collected in memory and sent to the client only after the lock is released, so a
// slow or silent client never holds up a push; receive-pack takes the write lock only
// around each ref transaction (see refGate), and each transaction it commits is
// published as an event. When ctx ends (the client hung up) the git process group
// gets SIGTERM, on which git removes the lock files of a transaction it had begun,
// and SIGKILL gitexec.TermGrace later.
// A non-zero exit is returned as *ExitError.
func (s *Store) ServeGit(ctx context.Context, service, repo string, env []string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	sub, err := gitSubcommand(service)
	if err != nil {
		return err
	}
	p, sl, err := ParseRepoPath(repo)
	if err != nil {
		return err
	}
	extra := gitProtocolEnv(env)
	lock := s.locks.get(repoKey(p, sl))
	var spool string
	var watch *advWriter
	var cmd *exec.Cmd
	switch service {
	case ServiceUploadPack:
		watch = &advWriter{w: stdout}
		defer watch.close()
		if len(extra) == 1 && extra[0] == "GIT_PROTOCOL=version=2" {
			// v2 reads refs only for ls-refs: lock when the client asks for it.
			if stdin != nil {
				stdin = &v2LockReader{ctx: ctx, r: stdin, lock: lock, watch: watch}
			}
		} else {
			if err := lock.RLock(ctx); err != nil {
				return err
			}
			watch.hold(lock.RUnlock)
		}
	case ServiceReceivePack:
		// No lock while the pack comes in: the hook takes the write lock around
		// each ref transaction through a gate (see refGate).
		if err := lock.Lock(ctx); err != nil {
			return err
		}
		s.clearStaleLocks(p, sl)
		s.pushStarted(repoKey(p, sl))
		lock.Unlock()
		// Deferred first, so it runs last: after the gate has let go of the lock.
		defer func() {
			killed := killedBySignal(cmd)
			s.pushEnded(repoKey(p, sl), killed)
			if !killed {
				return
			}
			// Clear what it may have left as soon as the lock is free, rather than
			// at the next update (which clears too, see clearStaleLocks).
			s.wg.Add(1) // within this operation, so never after Close's Wait
			go func() {
				defer s.wg.Done()
				if lock.Lock(s.ctx) == nil {
					s.clearStaleLocks(p, sl)
					lock.Unlock()
				}
			}()
		}()
		if spool, err = s.spool(); err != nil {
			return err
		}
		defer os.Remove(spool)
		extra = append(extra, eventsEnv+"="+spool)
	}
	_, _, dir, err := s.openRepo(p, sl)
	if err != nil {
		return err
	}
	args := []string{sub, "."}
	if service == ServiceUploadPack {
		args = []string{sub, "--strict", "."}
	}
	cmd = s.gitCommand(ctx, dir, extra, args...)
	cmd.Stderr = stderr
	if spool != "" {
		gate, err := s.openGate(ctx, p, sl, lock, spool, cmd)
		if err != nil {
			return fmt.Errorf("mesh: %w", err)
		}
		defer gate.close()
	}
	err = runGit(ctx, cmd, stdin, stdout, watch)
	if err != nil {
		return exitError(ctx, service, err)
	}
	return nil
}

// gitSubcommand maps a service name to git's subcommand.
func gitSubcommand(service string) (string, error) {
	switch service {
	case ServiceUploadPack, ServiceReceivePack, ServiceUploadArchive:
		return strings.TrimPrefix(service, "git-"), nil
	}
	return "", fmt.Errorf("%w: %q", ErrUnknownService, service)
}

// gitProtocolEnv returns the GIT_PROTOCOL entry of env when it is valid.
func gitProtocolEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		switch kv {
		case "GIT_PROTOCOL=version=0", "GIT_PROTOCOL=version=1", "GIT_PROTOCOL=version=2":
			out = []string{kv} // the last valid one wins, as with a real environment
		}
	}
	return out
}

// ExitError reports that a git service exited unsuccessfully.
type ExitError struct {
	Service string // for example "git-upload-pack"
	Code    int    // exit status; -1 when git was killed
	Err     error  // the underlying error, if any
}

func (e *ExitError) Error() string {
	if e.Code < 0 {
		return fmt.Sprintf("mesh: %s was killed: %v", e.Service, e.Err)
	}
	return fmt.Sprintf("mesh: %s exited with status %d", e.Service, e.Code)
}

// ExitCode returns the exit status, or -1 when git was killed.
func (e *ExitError) ExitCode() int { return e.Code }

// Unwrap returns the underlying error.
func (e *ExitError) Unwrap() error { return e.Err }

// exitError turns an error from running a git service into *ExitError; when ctx has
// ended, that is the cause it wraps.
func exitError(ctx context.Context, service string, err error) error {
	code := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return &ExitError{Service: service, Code: code, Err: err}
}
