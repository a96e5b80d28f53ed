package mirror

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// feed is the upstream's change feed: a bounded in-memory window of events whose
// sequence numbers keep increasing across restarts. A cursor older than the window
// gets "resync".
type feed struct {
	state UpstreamState
	size  int
	now   func() time.Time

	mu      sync.Mutex
	events  []FeedEvent // oldest first, at most size
	floor   uint64      // the oldest cursor still served is floor-1
	last    uint64
	changed chan struct{} // closed and replaced whenever something changes
	closed  bool
}

// newFeed loads the last sequence number and starts a fresh window after it: the
// events of the previous run are gone, so every older cursor must resync.
func newFeed(ctx context.Context, state UpstreamState, size int, now func() time.Time) (*feed, error) {
	if size <= 0 {
		size = 10000
	}
	f := &feed{state: state, size: size, now: now, changed: make(chan struct{})}
	var err error
	if f.last, err = state.FeedSeq(ctx); err != nil {
		return nil, fmt.Errorf("mirror: load change feed: %w", err)
	}
	if err := f.reset(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// reset empties the window so that every cursor handed out so far must resync.
func (f *feed) reset(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.state.SetFeedSeq(ctx, f.last+1); err != nil {
		return fmt.Errorf("mirror: change feed: %w", err)
	}
	f.last++
	f.floor = f.last + 1
	f.events = nil
	f.signal()
	return nil
}

// append adds ev with the next sequence number.
func (f *feed) append(ctx context.Context, ev FeedEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.state.SetFeedSeq(ctx, f.last+1); err != nil {
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
