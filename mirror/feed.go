package mirror

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FeedType says what a change-feed event reports.
type FeedType string

// The change-feed event types.
const (
	FeedRepoCreated    FeedType = "repo_created"
	FeedRepoDeleted    FeedType = "repo_deleted"
	FeedRefsChanged    FeedType = "refs_changed"
	FeedProjectAdded   FeedType = "project_added"
	FeedProjectRemoved FeedType = "project_removed"
)

// FeedEvent is one entry of the upstream's change feed.
type FeedEvent struct {
	Seq      uint64   `json:"seq"`
	Type     FeedType `json:"type"`
	Project  string   `json:"project"`
	Slug     string   `json:"slug,omitempty"`
	RefsHash string   `json:"refsHash,omitempty"`
	// Mirror limits a project event to one mirror; empty means every mirror.
	// It is not sent.
	Mirror string `json:"-"`
}

// EventsReply is the body of GET /events.
type EventsReply struct {
	Events []FeedEvent `json:"events"`
	Last   uint64      `json:"last"`
	Resync bool        `json:"resync,omitempty"` // with status 410: the cursor is too old
}

var feedLastKey = []byte("last")

// feed is the upstream's change feed: a bounded in-memory window of events whose
// sequence numbers keep increasing across restarts. A cursor older than the window
// gets "resync".
type feed struct {
	db   *bolt.DB
	size int
	now  func() time.Time

	mu      sync.Mutex
	events  []FeedEvent // oldest first, at most size
	floor   uint64      // the oldest cursor still served is floor-1
	last    uint64
	changed chan struct{} // closed and replaced whenever something changes
	closed  bool
}

// newFeed loads the last sequence number and starts a fresh window after it: the
// events of the previous run are gone, so every older cursor must resync.
func newFeed(db *bolt.DB, size int, now func() time.Time) (*feed, error) {
	if size <= 0 {
		size = 10000
	}
	f := &feed{db: db, size: size, now: now, changed: make(chan struct{})}
	err := db.View(func(tx *bolt.Tx) error {
		if v := ub(tx, feedMetaBucket).Get(feedLastKey); len(v) == 8 {
			f.last = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mirror: load change feed: %w", err)
	}
	if err := f.reset(); err != nil {
		return nil, err
	}
	return f, nil
}

// persist stores last durably.
func (f *feed) persist(last uint64) error {
	return f.db.Update(func(tx *bolt.Tx) error {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], last)
		return ub(tx, feedMetaBucket).Put(feedLastKey, b[:])
	})
}

// reset empties the window so that every cursor handed out so far must resync.
func (f *feed) reset() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.persist(f.last + 1); err != nil {
		return fmt.Errorf("mirror: change feed: %w", err)
	}
	f.last++
	f.floor = f.last + 1
	f.events = nil
	f.signal()
	return nil
}

// append adds ev with the next sequence number.
func (f *feed) append(ev FeedEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.persist(f.last + 1); err != nil {
		return fmt.Errorf("mirror: change feed: %w", err)
	}
	f.last++
	ev.Seq = f.last
	f.events = append(f.events, ev)
	if len(f.events) > f.size {
		drop := len(f.events) - f.size
		f.floor = f.events[drop].Seq
		f.events = append(f.events[:0:0], f.events[drop:]...)
	}
	f.signal()
	return nil
}

// signal wakes every waiter; f.mu is held.
func (f *feed) signal() {
	if !f.closed {
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

// changes returns a channel closed at the next change (or wake).
func (f *feed) changes() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// wake wakes every waiter without adding an event.
func (f *feed) wake() {
	f.mu.Lock()
	f.signal()
	f.mu.Unlock()
}

// close wakes every waiter for good.
func (f *feed) close() {
	f.mu.Lock()
	if !f.closed {
		f.closed = true
		close(f.changed)
	}
	f.mu.Unlock()
}

// since returns the events after cursor accepted by keep, the current last
// sequence number, a channel closed at the next change, and whether the cursor is
// too old (or from the future, as after the database was replaced).
func (f *feed) since(cursor uint64, keep func(FeedEvent) bool) (out []FeedEvent, last uint64, changed <-chan struct{}, resync bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cursor+1 < f.floor || cursor > f.last {
		return nil, f.last, f.changed, true
	}
	for _, ev := range f.events {
		if ev.Seq > cursor && keep(ev) {
			out = append(out, ev)
		}
	}
	return out, f.last, f.changed, false
}
