package mesh

import (
	"bytes"
	"context"
	"io"
	"slices"
	"sync"
)

// advScanner follows the pkt-line framing at the start of an upload-pack response to
// find where the ref advertisement ends: at the first flush-pkt for protocol v0/v1,
// and for v2 (first pkt-line "version 2") at the flush-pkt that ends the response to
// the client's first command (normally ls-refs), the capability advertisement
// having ended at the one before. Input that is not pkt-line framing ends the scan at
// once, so a broken stream never holds the lock.
type advScanner struct {
	hdr      [4]byte
	hdrN     int
	payload  int    // bytes left of the current pkt-line's payload
	first    []byte // the start of the first pkt-line's payload
	inFirst  bool
	seen     int // pkt-lines seen
	flushes  int
	need     int // flushes that end the advertisement; 0 until known
	finished bool
}

// feed consumes p and returns the number of its bytes that belong to the
// advertisement and whether the advertisement ended within them.
func (a *advScanner) feed(p []byte) (n int, ended bool) {
	if a.finished {
		return 0, true
	}
	for n < len(p) {
		if a.payload > 0 {
			k := min(a.payload, len(p)-n)
			if a.inFirst && len(a.first) < 16 {
				a.first = append(a.first, p[n:n+min(k, 16-len(a.first))]...)
			}
			a.payload -= k
			n += k
			if a.payload == 0 {
				a.endPkt()
			}
			continue
		}
		a.hdr[a.hdrN] = p[n]
		a.hdrN++
		n++
		if a.hdrN < 4 {
			continue
		}
		a.hdrN = 0
		size, ok := pktLen(a.hdr)
		switch {
		case !ok || (size > 2 && size < 4):
			a.finished = true
			return n, true
		case size == 0: // flush-pkt
			a.flushes++
			a.seen++
			if a.need == 0 {
				a.need = 1 // a v0 advertisement may start with flush only if empty
			}
			if a.flushes >= a.need {
				a.finished = true
				return n, true
			}
		case size <= 2: // delim-pkt, response-end-pkt
			a.seen++
		default:
			a.payload = size - 4
			a.inFirst = a.seen == 0
			a.seen++
			if a.payload == 0 {
				a.endPkt()
			}
		}
	}
	return n, false
}

// endPkt is called at the end of each data pkt-line. A scanner made with need
// already set (advScanner{need: 1}: to the first flush-pkt) keeps it.
func (a *advScanner) endPkt() {
	if a.inFirst {
		a.inFirst = false
		if a.need != 0 {
			return
		}
		if bytes.HasPrefix(a.first, []byte("version 2")) {
			a.need = 2
		} else {
			a.need = 1
		}
	}
}

// pktLen decodes a pkt-line length header.
func pktLen(h [4]byte) (int, bool) {
	n := 0
	for _, c := range h {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int(v)
	}
	return n, true
}

// maxAdvBuffer bounds the part of an advertisement held in memory so that the read
// lock is released before the client has to read it. A larger advertisement is
// written through, and the lock is then held until its last byte is written.
const maxAdvBuffer = 64 << 20

// advWriter passes an upload-pack response through to w and releases the
// repository's read lock once, as soon as git has produced the last byte of the ref
// advertisement (v0/v1) or of the response to the client's first command (v2). The
// advertisement is collected in memory while the lock is held and written to w only
// after the lock is released, so a client that is slow to read it, or never does,
// holds up no push.
//
// For protocol v2 the lock is not taken when git starts: the capability
// advertisement passes straight through, and v2LockReader takes the lock (through
// hold) only when the client's first command is ls-refs, before git sees it.
//
// A write that passes through (the v2 capability advertisement) may block on a
// client that does not read. The lock is then not taken until it completes
// (beginHold waits for it), and output from the moment a hold begins is
// collected: otherwise the reply to ls-refs would wait in git's pipe behind
// the blocked write, with the lock held for as long as the client stays
// silent.
type advWriter struct {
	w    io.Writer
	scan advScanner

	mu      sync.Mutex
	release func()        // set while the read lock is held
	pending bool          // a hold has begun: collect output
	writing bool          // a pass-through write is in progress
	idle    chan struct{} // closed when that write ends; nil when none waits

	buf       []byte
	streaming bool // the advertisement outgrew maxAdvBuffer and is written through
	done      bool // the advertisement ended: plain pass-through from now on
}

// hold records that the read lock is held, to be released with release.
func (a *advWriter) hold(release func()) {
	a.mu.Lock()
	a.release = release
	a.pending = false
	a.mu.Unlock()
}

// beginHold makes the writer collect output from now on and waits until no
// write is passing through to the client, so that the lock can be taken
// (then hold) without waiting behind that write. It returns ctx.Err() if ctx
// ends first.
func (a *advWriter) beginHold(ctx context.Context) error {
	a.mu.Lock()
	a.pending = true
	for a.writing {
		if a.idle == nil {
			a.idle = make(chan struct{})
		}
		idle := a.idle
		a.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
		a.mu.Lock()
	}
	a.mu.Unlock()
	return nil
}

// passThrough reports whether output goes straight to the client (no hold has
// begun) and, if so, marks a write in progress.
func (a *advWriter) passThrough() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.release != nil || a.pending {
		return false
	}
	a.writing = true
	return true
}

func (a *advWriter) wrote() {
	a.mu.Lock()
	a.writing = false
	if a.idle != nil {
		close(a.idle)
		a.idle = nil
	}
	a.mu.Unlock()
}

func (a *advWriter) Write(p []byte) (int, error) {
	if a.done {
		return a.w.Write(p)
	}
	n, ended := a.scan.feed(p)
	if a.passThrough() {
		// Not (yet) locked: a v2 capability advertisement, or a first command other
		// than ls-refs.
		a.done = ended
		defer a.wrote()
		return a.w.Write(p)
	}
	if !ended {
		if !a.streaming && len(a.buf)+len(p) <= maxAdvBuffer {
			a.buf = appendGrow(a.buf, p)
			return len(p), nil
		}
		if err := a.flush(); err != nil {
			return 0, err
		}
		a.streaming = true
		return a.w.Write(p)
	}
	a.done = true
	a.buf = appendGrow(a.buf, p[:n])
	a.close()
	if err := a.flush(); err != nil {
		return 0, err
	}
	if n == len(p) {
		return len(p), nil
	}
	k, err := a.w.Write(p[n:])
	return n + k, err
}

// appendGrow appends p to buf, doubling buf's capacity when it has to grow, but
// not beyond maxAdvBuffer unless p needs it: append's own growth, a quarter at a
// time for large slices, would copy a large advertisement several times over.
func appendGrow(buf, p []byte) []byte {
	if len(p) > cap(buf)-len(buf) {
		buf = slices.Grow(buf, max(len(p), min(len(buf), maxAdvBuffer-len(buf))))
	}
	return append(buf, p...)
}

// flush writes what is buffered.
func (a *advWriter) flush() error {
	if len(a.buf) == 0 {
		return nil
	}
	_, err := a.w.Write(a.buf)
	a.buf = nil
	return err
}

// finish ends the watch when git's output ended before the advertisement did:
// it releases the lock and writes what is buffered.
func (a *advWriter) finish() error {
	a.done = true
	a.close()
	return a.flush()
}

// close releases the lock if it is still held. It is safe to call more than once
// and from another goroutine than the writer's.
func (a *advWriter) close() {
	a.mu.Lock()
	release := a.release
	a.release = nil
	a.mu.Unlock()
	if release != nil {
		release()
	}
}

// v2LockReader passes a protocol v2 client's requests to git, and when the first
// one is an ls-refs command takes the repository's read lock before git can see
// it, for advWriter to release at the end of the reply. Other first commands
// (fetch with known object ids) need no consistent view of the refs.
type v2LockReader struct {
	ctx     context.Context
	r       io.Reader
	lock    *rwLock
	watch   *advWriter
	first   []byte // the client's bytes read while the first pkt-line is incomplete
	decided bool
	locked  func() // if set, called with the lock held for an ls-refs, before git reads it
}

// lsRefsCommand is how a v2 ls-refs request starts.
var lsRefsCommand = []byte("command=ls-refs")

func (v *v2LockReader) Read(p []byte) (int, error) {
	if v.decided {
		if len(v.first) > 0 {
			n := copy(p, v.first)
			v.first = v.first[n:]
			return n, nil
		}
		return v.r.Read(p)
	}
	tmp := make([]byte, 512)
	for {
		if end, ok := firstPktEnd(v.first); ok {
			v.decided = true
			if end >= 4 && bytes.HasPrefix(v.first[4:end], lsRefsCommand) {
				if err := v.watch.beginHold(v.ctx); err != nil {
					return 0, err
				}
				if err := v.lock.RLock(v.ctx); err != nil {
					return 0, err
				}
				v.watch.hold(v.lock.RUnlock)
				if v.locked != nil {
					v.locked()
				}
			}
			return v.Read(p)
		}
		n, err := v.r.Read(tmp)
		v.first = append(v.first, tmp[:n]...)
		if err != nil {
			v.decided = true
			if len(v.first) > 0 {
				return v.Read(p)
			}
			return 0, err
		}
	}
}

// firstPktEnd reports where the first pkt-line of b ends, once b holds all of it.
// Input that is not pkt-line framing counts as complete at once.
func firstPktEnd(b []byte) (int, bool) {
	if len(b) < 4 {
		return 0, false
	}
	size, ok := pktLen([4]byte(b[:4]))
	if !ok || size < 4 {
		return 4, true
	}
	if len(b) < size {
		return 0, false
	}
	return size, true
}
