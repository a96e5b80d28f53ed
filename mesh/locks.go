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
// additionally dies with the store's process (Pdeathsig). A git process left
// running by a crashed store would update refs behind the back of the next store's
// locks, and its lock files could not be told from stale ones. (Pdeathsig follows
// the forking thread; exec.Cmd forks on an ordinary runtime thread, which the Go
// runtime does not retire.)
func (s *Store) gitCommand(ctx context.Context, dir string, env []string, args ...string) *exec.Cmd {
	cmd := gitexec.Command(ctx, dir, env, args...)
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	return cmd
}

// clearStaleLocks installs the current event hook and removes, once per
// repository per Store, the lock files a git
// process killed outright (SIGKILL leaves them) would otherwise leave forever,
// refusing every later update of those refs. It is called with the repository's
// write lock held, before the store's first ref update in it; since git processes
// die with the store that started them, no live process can own such a file then.
func (s *Store) clearStaleLocks(project, slug string) {
	key := repoKey(project, slug)
	s.mu.Lock()
	if s.lockChecked == nil {
		s.lockChecked = map[string]bool{}
	}
	done := s.lockChecked[key]
	s.lockChecked[key] = true
	s.mu.Unlock()
	if done {
		return
	}
	dir := s.repoDir(project, slug)
	// Repositories made by an older store have an older hook: bring it up to date.
	hook := filepath.Join(dir, "hooks", "reference-transaction")
	if cur, err := os.ReadFile(hook); err != nil || string(cur) != hookScript {
		tmp := hook + ".new"
		if err := os.WriteFile(tmp, []byte(hookScript), 0o755); err == nil {
			os.Rename(tmp, hook)
		}
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
}
