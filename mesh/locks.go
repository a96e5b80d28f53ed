package mesh

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/gitfleet/gitfleet/internal/gitexec"
)

// gitCommand is gitexec.Command for a git process serving a repository, which
// on Linux additionally dies with the store's process (Pdeathsig; other systems
// have no such attribute, see the package documentation). A git process left
// running by a crashed store would update refs behind the back of the next store's
// locks, and its lock files could not be told from stale ones. (Pdeathsig follows
// the forking thread; exec.Cmd forks on an ordinary runtime thread, which the Go
// runtime retires only when a goroutine ends locked to it; nothing in this module
// does, see the Supervisor's start.)
func (s *Store) gitCommand(ctx context.Context, dir string, env []string, args ...string) *exec.Cmd {
	cmd := gitexec.Command(ctx, dir, env, args...)
	setGitProcAttr(cmd)
	return cmd
}

// repoLocks is what the store knows about a repository's git lock files.
type repoLocks struct {
	checked bool // cleared once by this Store
	dirty   bool // a receive-pack died by a signal since: it may have left lock files
	pushes  int  // receive-packs running
}

// clearStaleLocks installs the current hooks and removes the lock files a git
// process killed by a signal would otherwise leave forever, refusing every later
// update of those refs, and the quarantine directories of killed receive-packs: once per repository per Store, and again after a
// receive-pack in it died by a signal (git removes its locks on SIGTERM, except
// when the signal lands between its creating a lock file and registering it for
// removal; SIGKILL leaves them all). It is called with the repository's write lock
// held, before a ref update, and does nothing while a receive-pack runs there, since
// that one's locks are live (receive-packs are counted under the write lock, see
// pushStarted). Git processes die with the store that started them, so none from an
// earlier Store can own such a file.
func (s *Store) clearStaleLocks(project, slug string) {
	s.mu.Lock()
	st := s.repoLocksLocked(repoKey(project, slug))
	first := !st.checked
	if (st.checked && !st.dirty) || st.pushes > 0 {
		s.mu.Unlock()
		return
	}
	st.checked, st.dirty = true, false
	s.mu.Unlock()
	dir := s.repoDir(project, slug)
	if first {
		// Repositories made by an older store have older hooks: bring them up to date.
		installHooks(dir)
	}
	var stale []string
	for _, name := range []string{"packed-refs.lock", "HEAD.lock", "config.lock", "shallow.lock"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			stale = append(stale, filepath.Join(dir, name))
		}
	}
	filepath.WalkDir(filepath.Join(dir, "refs"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(d.Name(), ".lock") {
			stale = append(stale, path)
		}
		return nil
	})
	for _, path := range stale {
		if err := os.Remove(path); err == nil {
			s.log.Warn("mesh: removed a stale lock file left by a killed git process", "project", project, "slug", slug, "file", strings.TrimPrefix(path, dir+"/"))
		}
	}
	// A receive-pack killed while it received a pack leaves its quarantine
	// directory (objects/tmp_objdir-incoming-*), which git never removes later.
	// No receive-pack of this Store runs here (checked above, under the write lock
	// that a starting receive-pack takes to be counted), so none is live.
	debris, _ := filepath.Glob(filepath.Join(dir, "objects", "tmp_objdir-incoming-*"))
	for _, path := range debris {
		if err := os.RemoveAll(path); err == nil {
			s.log.Warn("mesh: removed the quarantine directory of a killed receive-pack", "project", project, "slug", slug, "dir", strings.TrimPrefix(path, dir+"/"))
		}
	}
}

// repoLocksLocked returns the lock state of a repository; s.mu is held.
func (s *Store) repoLocksLocked(key string) *repoLocks {
	if s.lockState == nil {
		s.lockState = map[string]*repoLocks{}
	}
	st := s.lockState[key]
	if st == nil {
		st = &repoLocks{}
		s.lockState[key] = st
	}
	return st
}

// pushStarted counts a receive-pack in a repository; the caller holds its write
// lock, so clearStaleLocks, which runs under the same lock, never sees a running
// receive-pack uncounted.
func (s *Store) pushStarted(key string) {
	s.mu.Lock()
	s.repoLocksLocked(key).pushes++
	s.mu.Unlock()
}

// pushEnded uncounts a receive-pack; killed says it died by a signal.
func (s *Store) pushEnded(key string, killed bool) {
	s.mu.Lock()
	st := s.repoLocksLocked(key)
	st.pushes--
	if killed {
		st.dirty = true
	}
	s.mu.Unlock()
}

// killedBySignal reports whether a command that was run to completion died by a
// signal (false when it never started).
func killedBySignal(cmd *exec.Cmd) bool {
	if cmd == nil || cmd.ProcessState == nil {
		return false
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}
