package mesh

import "context"

// HoldWriteLock takes the store's write lock on a repository (already normalised
// names) for a test, and returns its release.
func HoldWriteLock(ctx context.Context, s *Store, project, slug string) (release func(), err error) {
	l := s.locks.get(repoKey(project, slug))
	if err := l.Lock(ctx); err != nil {
		return nil, err
	}
	return l.Unlock, nil
}
