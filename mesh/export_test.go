package mesh

import (
	"context"
	"io"
	"io/fs"
	"os"
)

// ParentWatchEnv is parentWatchEnv, for a test that starts a sidecar by hand.
const ParentWatchEnv = parentWatchEnv

// HoldWriteLock takes the store's write lock on a repository (already normalised
// names) for a test, and returns its release.
func HoldWriteLock(ctx context.Context, s *Store, project, slug string) (release func(), err error) {
	l := s.locks.get(repoKey(project, slug))
	if err := l.Lock(ctx); err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

// WriteWaiters returns how many callers wait for the store's write lock on a
// repository (already normalised names).
func WriteWaiters(s *Store, project, slug string) int {
	l := s.locks.get(repoKey(project, slug))
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waitingW
}

// PushesRunning reports whether a receive-pack runs in the repository.
func PushesRunning(s *Store, project, slug string) bool {
	return s.pushesRunning(repoKey(project, slug))
}

// FailLFSWrites makes uploads' writes fail with err until the returned
// function is called.
func FailLFSWrites(err error) (restore func()) {
	lfsTestWriter = func(f *os.File) io.Writer { return failingWriter{f, err} }
	return func() { lfsTestWriter = nil }
}

type failingWriter struct {
	f   *os.File
	err error
}

func (w failingWriter) Write(p []byte) (int, error) {
	return 0, &fs.PathError{Op: "write", Path: w.f.Name(), Err: w.err}
}
