package mesh

import (
	"context"
	"sync"
)

// rwLock is a reader/writer lock whose acquisition can be abandoned when a context
// ends. Waiting writers take precedence over new readers, so a stream of clones cannot
// starve a push.
type rwLock struct {
	mu       sync.Mutex
	readers  int
	writer   bool
	waitingW int
	changed  chan struct{} // closed and replaced whenever the lock is released
}

func newRWLock() *rwLock { return &rwLock{changed: make(chan struct{})} }

// RLock acquires the lock for reading, or returns ctx.Err().
func (l *rwLock) RLock(ctx context.Context) error {
	for {
		l.mu.Lock()
		if !l.writer && l.waitingW == 0 {
			l.readers++
			l.mu.Unlock()
			return nil
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// RUnlock releases a read lock.
func (l *rwLock) RUnlock() {
	l.mu.Lock()
	l.readers--
	if l.readers == 0 {
		l.broadcast()
	}
	l.mu.Unlock()
}

// Lock acquires the lock for writing, or returns ctx.Err().
func (l *rwLock) Lock(ctx context.Context) error {
	l.mu.Lock()
	l.waitingW++
	for l.writer || l.readers > 0 {
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			l.mu.Lock()
			l.waitingW--
			l.broadcast() // readers held back by this writer may proceed
			l.mu.Unlock()
			return ctx.Err()
		}
		l.mu.Lock()
	}
	l.waitingW--
	l.writer = true
	l.mu.Unlock()
	return nil
}

// Unlock releases the write lock.
func (l *rwLock) Unlock() {
	l.mu.Lock()
	l.writer = false
	l.broadcast()
	l.mu.Unlock()
}

func (l *rwLock) broadcast() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// lockTable hands out one rwLock per repository. Locks are never removed: there is
// one small struct per repository name ever used, which is bounded by the number of
// repositories.
type lockTable struct {
	mu    sync.Mutex
	locks map[string]*rwLock
}

func (t *lockTable) get(key string) *rwLock {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.locks == nil {
		t.locks = map[string]*rwLock{}
	}
	l := t.locks[key]
	if l == nil {
		l = newRWLock()
		t.locks[key] = l
	}
	return l
}
