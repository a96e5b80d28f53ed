package mesh

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// DefaultLFSGracePeriod is how long an LFS object no ref reaches is kept unless
// StoreConfig.LFSGracePeriod says otherwise: git-lfs uploads a push's objects
// before the push's refs, and a branch may be pushed long after its objects.
const DefaultLFSGracePeriod = 24 * time.Hour

// lfsGC removes from a repository the Git LFS objects that no ref reaches and
// that nobody has uploaded, announced or checked for the grace period, and
// upload debris in lfs/incoming as old. It does nothing while a push runs in
// the repository. An upload session's batch and verify-object touch the objects
// they find, so an object a push is about to reference (git-lfs asks for it
// before the push sends its refs) is never old at that moment; the candidates'
// ages are read again just before each removal.
func (s *Store) lfsGC(ctx context.Context, p, sl, dir string) (int, error) {
	root := filepath.Join(dir, lfsDirName, lfsObjectsDir)
	if s.lfsGrace < 0 {
		return 0, nil
	}
	cutoff := time.Now().Add(-s.lfsGrace)
	old := func(path string) bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Mode().IsRegular() && fi.ModTime().Before(cutoff)
	}
	if entries, err := os.ReadDir(filepath.Join(dir, lfsDirName, lfsIncomingDir)); err == nil {
		for _, e := range entries {
			if path := filepath.Join(dir, lfsDirName, lfsIncomingDir, e.Name()); old(path) {
				os.Remove(path)
			}
		}
	}
	var candidates []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == root {
				return filepath.SkipAll
			}
			return err
		}
		if !d.IsDir() && parseOID(d.Name()) == nil && old(path) {
			candidates = append(candidates, path)
		}
		return nil
	})
	if err != nil || len(candidates) == 0 {
		return 0, err
	}
	if s.pushesRunning(repoKey(p, sl)) {
		return 0, nil // the next pass removes them
	}
	refs, err := s.Refs(ctx, p, sl)
	if err != nil {
		return 0, err
	}
	reachable, err := s.lfsPointers(ctx, dir, uniqueIDs(refs), nil)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, path := range candidates {
		if _, ok := reachable[filepath.Base(path)]; ok || !old(path) || s.pushesRunning(repoKey(p, sl)) {
			continue
		}
		if err := os.Remove(path); err == nil {
			removed++
		}
	}
	if removed > 0 {
		s.log.Info("mesh: unreferenced lfs objects removed", "project", p, "slug", sl, "removed", removed, "grace", s.lfsGrace)
	}
	return removed, nil
}

// pushesRunning reports whether a receive-pack runs in the repository.
func (s *Store) pushesRunning(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.repoLocksLocked(key).pushes > 0
}

// touchLFS marks an object as just wanted (see lfsGC).
func touchLFS(path string) {
	now := time.Now()
	os.Chtimes(path, now, now)
}
