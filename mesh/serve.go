package mesh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/gitfleet/gitfleet"
)

// ServeGit runs the git service req.Service on req.Repo wired to the caller's
// streams, with no framing on the bytes. Of the request's environment only
// GIT_PROTOCOL reaches git, from req.Protocol (1 or 2; any other value is protocol
// v0). A repository that does not exist is an error wrapping ErrNotFound
// (gitfleet.ErrNotFound), returned before anything is written; a name that is not
// valid (a caller may build a gitfleet.RepoName by hand) is an ErrInvalidName.
//
// upload-pack holds the repository's read lock while git writes its ref
// advertisement (v0/v1) or its reply to a v2 ls-refs command, which is collected
// in memory and sent to the client only after the lock is released, so a slow or
// silent client never holds up a push; receive-pack takes the write lock only
// around each ref transaction (see refGate), and each transaction it commits is
// published as an event. When ctx ends (the client hung up) the git process group
// gets SIGTERM, on which git removes the lock files of a transaction it had begun,
// and SIGKILL gitexec.TermGrace later.
// A non-zero exit is returned as *ExitError.
func (s *Store) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	return s.serveGit(ctx, req, func() (io.Reader, io.Writer, error) { return stdin, stdout, nil }, stderr)
}

// attachFunc supplies a git service's stdin and stdout. serveGit calls it once it
// has found the repository (and taken what locks the service starts with), just
// before git starts, so that the sidecar can answer a missing repository with a
// plain error response and upgrade the connection only for a service that runs.
type attachFunc func() (stdin io.Reader, stdout io.Writer, err error)

// serveGit is ServeGit with streams that attach supplies; see attachFunc. The
// repository's existence is checked once, here.
func (s *Store) serveGit(ctx context.Context, req gitfleet.GitRequest, attach attachFunc, stderr io.Writer) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	service := req.Service
	sub, err := gitSubcommand(service)
	if err != nil {
		return err
	}
	p, sl, err := repoName(req.Repo.Project, req.Repo.Slug)
	if err != nil {
		return err
	}
	if service == gitfleet.LFSTransfer {
		return s.serveLFS(ctx, req, p, sl, attach)
	}
	if req.Protocol != 1 && req.Protocol != 2 {
		req.Protocol = 0
	}
	extra := req.Env()
	lock := s.locks.get(repoKey(p, sl))
	// unlock releases the read lock upload-pack starts with (v0/v1) while it is
	// still ours; once the advertisement watch holds it, it is nil.
	var unlock func()
	defer func() {
		if unlock != nil {
			unlock()
		}
	}()
	var dir, spool string
	var cmd *exec.Cmd
	switch service {
	case gitfleet.UploadPack:
		if req.Protocol != 2 {
			if err := lock.RLock(ctx); err != nil {
				return err
			}
			unlock = lock.RUnlock
		} // v2 reads refs only for ls-refs: v2LockReader locks when the client asks.
		if _, _, dir, err = s.openRepo(p, sl); err != nil {
			return err
		}
	case gitfleet.ReceivePack:
		// No lock while the pack comes in: the hook takes the write lock around
		// each ref transaction through a gate (see refGate).
		if err := lock.Lock(ctx); err != nil {
			return err
		}
		if _, _, dir, err = s.openRepo(p, sl); err != nil {
			lock.Unlock()
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
		defer os.Remove(spool + pushReportSuffix)
		defer os.Remove(spool + pushCertSuffix)
		extra = append(extra, eventsEnv+"="+spool)
		extra = append(extra, s.receivePackEnv(spool, req.RequireSignedPush)...)
	default:
		if _, _, dir, err = s.openRepo(p, sl); err != nil {
			return err
		}
	}
	stdin, stdout, err := attach()
	if err != nil {
		return err
	}
	var fc *fetchCache
	var tap advTap
	if service == gitfleet.UploadPack && req.Protocol == 2 && s.packs != nil && s.packs.responses && stdin != nil {
		var rc *respCapture
		fc, rc = s.packs.newFetchCache(ctx, p, sl, dir, lock, stdin, stdout)
		defer rc.close()
		served, t, err := runSession(ctx, fc, stdin)
		if served {
			if err != nil {
				return exitError(ctx, service, err)
			}
			return nil
		}
		tap = t
		defer tap.close()
		stdin, stdout = fc, tap
	}
	var watch *advWriter
	if service == gitfleet.UploadPack {
		watch = &advWriter{w: stdout}
		defer watch.close()
		if unlock != nil {
			watch.hold(unlock)
			unlock = nil
		} else if stdin != nil {
			v := &v2LockReader{ctx: ctx, r: stdin, lock: lock, watch: watch}
			if fc != nil {
				v.locked = func() { fc.armList(tap) }
			}
			stdin = v
		}
	}
	args := []string{sub, "."}
	if service == gitfleet.UploadPack {
		args = []string{sub, "--strict", "."}
	}
	cmd = s.gitCommand(ctx, dir, extra, args...)
	cmd.Stderr = stderr
	if service == gitfleet.UploadPack && s.packs != nil {
		ps, err := s.packs.attach(ctx, p, sl, dir, cmd)
		if err != nil {
			return fmt.Errorf("mesh: %w", err)
		}
		defer ps.close()
	}
	if spool != "" {
		gate, err := s.openGate(ctx, p, sl, lock, spool, cmd)
		if err != nil {
			return fmt.Errorf("mesh: %w", err)
		}
		defer gate.close()
	}
	var queue *outQueue
	if service == gitfleet.ReceivePack {
		queue = newOutQueue(stdout)
		stdout = queue
	}
	err = runGit(ctx, cmd, stdin, stdout, watch)
	if queue != nil {
		if qerr := queue.close(ctx); err == nil && qerr != nil {
			return fmt.Errorf("mesh: %w", qerr)
		}
	}
	if err != nil {
		return exitError(ctx, service, err)
	}
	return nil
}

// ExitError reports that a git service exited unsuccessfully.
type ExitError struct {
	Service gitfleet.Service // for example gitfleet.UploadPack
	Code    int              // exit status; -1 when git was killed
	Err     error            // the underlying error, if any
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
func exitError(ctx context.Context, service gitfleet.Service, err error) error {
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
