package mesh

import (
	"bufio"
	"context"
	"io"
	"strings"
	"sync"
	"time"
)

// eventsEnv names the environment variable through which the store tells the
// reference-transaction hook where to report. Each git process the store starts that
// may update refs gets a spool file of its own.
const eventsEnv = "GITFLEET_EVENTS"

// parseTransactions reads a spool file: transactions of "<old> <new> <ref>" lines,
// each terminated by a "." line. It keeps refs under refs/ (HEAD's symbolic update is
// reported by git too) and malformed lines are skipped. complete is false when the
// input ends inside a transaction.
func parseTransactions(r io.Reader) (txns [][]RefUpdate, complete bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	var cur []RefUpdate
	open := false
	for sc.Scan() {
		line := sc.Text()
		if line == "." {
			if len(cur) > 0 {
				txns = append(txns, cur)
			}
			cur, open = nil, false
			continue
		}
		open = true
		f := strings.SplitN(line, " ", 3)
		if len(f) != 3 || !isObjectID(f[0]) || !isObjectID(f[1]) || !strings.HasPrefix(f[2], "refs/") {
			continue
		}
		cur = append(cur, RefUpdate{Ref: f[2], Old: f[0], New: f[1]})
	}
	if sc.Err() != nil {
		return txns, false
	}
	return txns, !open
}

// resolveTransactions turns the transactions git 2.39 reports into the ref changes
// they made. Two quirks of that version need care:
//
//   - Deleting a ref that is also in packed-refs runs a second, internal transaction
//     on the packed-refs file first, reported as "<zero> <zero> <ref>" lines. Such a
//     transaction, made only of zero->zero lines for refs that a later transaction
//     deletes, is dropped.
//   - A deletion whose caller gave no expected old value (fetch --prune, which
//     deletes ref by ref outside the atomic transaction) is reported as zero->zero
//     too. Its old id is taken from before, the refs as they were when the git
//     process started (exact: every ref writer holds the repository's write lock),
//     advanced through the earlier transactions. Without before such a line, and any
//     line whose old and new ids are equal, is dropped; unresolved reports whether
//     that happened, so the caller can report a gap instead.
func resolveTransactions(txns [][]RefUpdate, before map[string]string) (out [][]RefUpdate, unresolved bool) {
	state := before
	for i, txn := range txns {
		if packedSide(txn, txns[i+1:]) {
			continue
		}
		var res []RefUpdate
		for _, u := range txn {
			if u.Old == u.New {
				if u.New != ZeroID && u.New != zeroID256 {
					continue // a verification, not a change
				}
				old, ok := state[u.Ref]
				if !ok {
					if state == nil {
						unresolved = true
					}
					continue
				}
				u.Old = old
			}
			if state != nil {
				if isZeroID(u.New) {
					delete(state, u.Ref)
				} else {
					state[u.Ref] = u.New
				}
			}
			res = append(res, u)
		}
		if len(res) > 0 {
			out = append(out, res)
		}
	}
	return out, unresolved
}

const zeroID256 = ZeroID + "000000000000000000000000"

func isZeroID(id string) bool { return id == ZeroID || id == zeroID256 }

// packedSide reports whether txn is git's internal packed-refs transaction: only
// zero->zero lines, for refs that a later transaction deletes.
func packedSide(txn []RefUpdate, later [][]RefUpdate) bool {
	for _, u := range txn {
		if !isZeroID(u.Old) || !isZeroID(u.New) {
			return false
		}
	}
	for _, u := range txn {
		deleted := false
		for _, t := range later {
			for _, v := range t {
				if v.Ref == u.Ref && isZeroID(v.New) {
					deleted = true
					break
				}
			}
			if deleted {
				break
			}
		}
		if !deleted {
			return false
		}
	}
	return true
}

// isObjectID reports whether s is a lower-case hex SHA-1 or SHA-256 object id.
func isObjectID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// bus fans events out to subscribers. Publishing never blocks: each subscriber has a
// bounded queue, and one that overflows loses its backlog and is sent EventGap.
type bus struct {
	size int

	mu     sync.Mutex
	seq    uint64
	subs   map[*subscriber]struct{}
	closed bool
	wg     sync.WaitGroup
}

type subscriber struct {
	out  chan Event
	wake chan struct{} // capacity 1
	stop chan struct{} // closed by bus.close

	mu    sync.Mutex
	queue []Event
	gap   bool
	drop  uint64 // seq of the last event dropped
}

func newBus(size int) *bus { return &bus{size: size, subs: map[*subscriber]struct{}{}} }

// publish stamps ev with the next sequence number and the time, and queues it for
// every subscriber.
func (b *bus) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev.Seq = b.seq
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	for s := range b.subs {
		s.mu.Lock()
		if len(s.queue) >= b.size {
			s.queue = s.queue[:0]
			s.gap = true
		}
		if s.gap && len(s.queue) == 0 && ev.Type != EventGap {
			s.drop = ev.Seq
		} else {
			s.queue = append(s.queue, ev)
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// subscribe registers a subscriber whose channel closes when ctx ends or the bus is
// closed.
func (b *bus) subscribe(ctx context.Context) (<-chan Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	s := &subscriber{out: make(chan Event), wake: make(chan struct{}, 1), stop: make(chan struct{})}
	b.subs[s] = struct{}{}
	b.wg.Add(1)
	go b.forward(ctx, s)
	return s.out, nil
}

// forward delivers a subscriber's queue to its channel.
func (b *bus) forward(ctx context.Context, s *subscriber) {
	defer b.wg.Done()
	defer close(s.out)
	defer func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			var batch []Event
			if s.gap {
				batch = append(batch, Event{Seq: s.drop, Type: EventGap, Time: time.Now().UTC()})
				s.gap = false
			}
			batch = append(batch, s.queue...)
			s.queue = s.queue[:0]
			s.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, ev := range batch {
				select {
				case s.out <- ev:
				case <-ctx.Done():
					return
				case <-s.stop:
					return
				}
			}
		}
	}
}

// close ends every subscription and waits for the forwarding goroutines.
func (b *bus) close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		for s := range b.subs {
			close(s.stop)
		}
	}
	b.mu.Unlock()
	b.wg.Wait()
}
