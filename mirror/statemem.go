package mirror

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet"
)

// MemoryState keeps a mirror's or an upstream's state in memory: everything is
// lost when the process ends, so a mirror using it sets itself up anew (with a
// new id) at every start, and an upstream forgets its mirrors. It suits tests
// and programs that keep their state elsewhere. It implements MirrorState and
// UpstreamState, and is safe for concurrent use.
type MemoryState struct {
	mu       sync.Mutex
	identity *Identity
	reg      Registration
	cursor   uint64
	syncs    map[gitfleet.RepoName]time.Time
	servers  map[string]*MirrorRecord // live, by id
	keys     map[string]string        // fingerprint -> id
	removed  map[string]*MirrorRecord
	nonces   map[string]int64 // timestamp \n id \n nonce -> timestamp
	feedSeq  uint64
}

// NewMemoryState returns an empty state.
func NewMemoryState() *MemoryState {
	return &MemoryState{
		syncs:   map[gitfleet.RepoName]time.Time{},
		servers: map[string]*MirrorRecord{},
		keys:    map[string]string{},
		removed: map[string]*MirrorRecord{},
		nonces:  map[string]int64{},
	}
}

// Identity implements MirrorState.
func (s *MemoryState) Identity(ctx context.Context) (Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.identity == nil {
		return Identity{}, fmt.Errorf("mirror: no identity stored: %w", gitfleet.ErrNotFound)
	}
	return *s.identity, nil
}

// SetIdentity implements MirrorState.
func (s *MemoryState) SetIdentity(ctx context.Context, id Identity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identity = &id
	return nil
}

// Registration implements MirrorState.
func (s *MemoryState) Registration(ctx context.Context) (Registration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reg.clone(), nil
}

// SetRegistration implements MirrorState.
func (s *MemoryState) SetRegistration(ctx context.Context, r Registration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reg = r.clone()
	return nil
}

// Cursor implements MirrorState.
func (s *MemoryState) Cursor(ctx context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor, nil
}

// SetCursor implements MirrorState.
func (s *MemoryState) SetCursor(ctx context.Context, cursor uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursor = cursor
	return nil
}

// RepoSyncs implements MirrorState.
func (s *MemoryState) RepoSyncs(ctx context.Context) (map[gitfleet.RepoName]time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.syncs), nil
}

// SetRepoSync implements MirrorState.
func (s *MemoryState) SetRepoSync(ctx context.Context, repo gitfleet.RepoName, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs[repo] = at
	return nil
}

// DeleteRepoSync implements MirrorState.
func (s *MemoryState) DeleteRepoSync(ctx context.Context, repo gitfleet.RepoName) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.syncs, repo)
	return nil
}

// Mirror implements UpstreamState.
func (s *MemoryState) Mirror(ctx context.Context, id string) (*MirrorRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.servers[id]; r != nil {
		return r.clone(), false, nil
	}
	if r := s.removed[id]; r != nil {
		return r.clone(), true, nil
	}
	return nil, false, fmt.Errorf("mirror %q: %w", id, gitfleet.ErrNotFound)
}

// MirrorByKey implements UpstreamState.
func (s *MemoryState) MirrorByKey(ctx context.Context, fingerprint string) (*MirrorRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.servers[s.keys[fingerprint]]; r != nil {
		return r.clone(), nil
	}
	return nil, fmt.Errorf("mirror key %s: %w", fingerprint, gitfleet.ErrNotFound)
}

// Mirrors implements UpstreamState.
func (s *MemoryState) Mirrors(ctx context.Context) ([]*MirrorRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*MirrorRecord, 0, len(s.servers))
	for _, id := range slices.Sorted(maps.Keys(s.servers)) {
		out = append(out, s.servers[id].clone())
	}
	return out, nil
}

// AddMirror implements UpstreamState.
func (s *MemoryState) AddMirror(ctx context.Context, rec *MirrorRecord) (*MirrorRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.removed[rec.ID] != nil:
		return nil, ErrMirrorRemoved
	case s.servers[rec.ID] != nil:
		return s.servers[rec.ID].clone(), ErrMirrorExists
	case s.keys[rec.Fingerprint] != "":
		return nil, ErrKeyInUse
	}
	s.servers[rec.ID] = rec.clone()
	s.keys[rec.Fingerprint] = rec.ID
	return nil, nil
}

// UpdateMirror implements UpstreamState.
func (s *MemoryState) UpdateMirror(ctx context.Context, id string, change func(*MirrorRecord) error) (*MirrorRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.servers[id]
	if cur == nil {
		return nil, fmt.Errorf("mirror %q: %w", id, gitfleet.ErrNotFound)
	}
	rec := cur.clone()
	if err := change(rec); err != nil {
		return nil, err
	}
	s.servers[id] = rec.clone()
	return rec, nil
}

// RemoveMirror implements UpstreamState.
func (s *MemoryState) RemoveMirror(ctx context.Context, id string, at time.Time) (*MirrorRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.servers[id]
	if rec == nil {
		return nil, fmt.Errorf("mirror %q: %w", id, gitfleet.ErrNotFound)
	}
	delete(s.servers, id)
	delete(s.keys, rec.Fingerprint)
	rec.Updated = at
	s.removed[id] = rec
	return rec.clone(), nil
}

// PurgeRemoved implements UpstreamState.
func (s *MemoryState) PurgeRemoved(ctx context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, rec := range s.removed {
		if rec.Updated.Before(before) {
			delete(s.removed, id)
			n++
		}
	}
	return n, nil
}

// UseNonce implements UpstreamState.
func (s *MemoryState) UseNonce(ctx context.Context, id string, timestamp int64, nonce string, pruneBefore int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strconv.FormatInt(timestamp, 10) + "\n" + id + "\n" + nonce
	if _, ok := s.nonces[key]; ok {
		return ErrReplay
	}
	s.nonces[key] = timestamp
	for k, ts := range s.nonces {
		if ts < pruneBefore {
			delete(s.nonces, k)
		}
	}
	return nil
}

// FeedSeq implements UpstreamState.
func (s *MemoryState) FeedSeq(ctx context.Context) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.feedSeq, nil
}

// SetFeedSeq implements UpstreamState.
func (s *MemoryState) SetFeedSeq(ctx context.Context, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.feedSeq = seq
	return nil
}
