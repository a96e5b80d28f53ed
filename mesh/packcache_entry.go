package mesh

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// errPackTooBig is a pack that outgrew the cache's size limit while being made.
var errPackTooBig = errors.New("pack larger than the cache")

// packEntry is a pack being produced: pack-objects writes it (Write) into a
// temporary file in the cache, and every request for it reads the file as it
// grows. When writing to the file fails (disk full, or the pack outgrows the
// cache) the rest is kept in memory instead, so that requests already reading
// are still served; such a pack is not kept.
type packEntry struct {
	f         *os.File // the temporary file, nil in memory mode from the start
	tmp       string
	limit     int64
	failWrite func() error

	mu      sync.Mutex
	fileLen int64  // bytes in the file
	tail    []byte // bytes after fileLen, in memory mode
	memMode bool
	done    bool
	err     error
	changed chan struct{} // closed and replaced at every change
}

// Write appends pack-objects' output.
func (e *packEntry) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.memMode {
		err := error(nil)
		if e.fileLen+int64(len(p)) > e.limit {
			err = errPackTooBig
		} else if e.failWrite != nil {
			err = e.failWrite()
		}
		n := 0
		if err == nil {
			n, err = e.f.WriteAt(p, e.fileLen)
		}
		e.fileLen += int64(n)
		if err != nil {
			e.memMode = true
			e.tail = append(e.tail, p[n:]...)
		}
	} else {
		e.tail = append(e.tail, p...)
	}
	e.notify()
	return len(p), nil
}

// notify wakes the readers; e.mu is held.
func (e *packEntry) notify() {
	close(e.changed)
	e.changed = make(chan struct{})
}

func (e *packEntry) isMem() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.memMode
}

func (e *packEntry) size() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fileLen + int64(len(e.tail))
}

// finish marks the pack complete (err nil) or failed.
func (e *packEntry) finish(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.done, e.err = true, err
	e.notify()
}

// entryReader is one request's view of a packEntry.
type entryReader struct {
	e  *packEntry
	rf *os.File // its own descriptor of the temporary file
}

// reader opens a reader from the start of the pack. It is called while the
// entry is in flight (the cache's mutex held), so the temporary file has not
// been renamed or removed yet.
func (e *packEntry) reader() *entryReader {
	r := &entryReader{e: e}
	if e.tmp != "" {
		r.rf, _ = os.Open(e.tmp)
	}
	return r
}

// copyTo streams the pack to w as it grows, until it is complete (nil), fails
// (its error) or ctx ends. Bytes sent are added to served when it is not nil.
func (r *entryReader) copyTo(ctx context.Context, w io.Writer, served *atomic.Int64) error {
	if r.rf != nil {
		defer r.rf.Close()
	}
	e := r.e
	buf := make([]byte, 64<<10)
	var off int64
	for {
		e.mu.Lock()
		fileLen, tail, done, err, ch := e.fileLen, e.tail, e.done, e.err, e.changed
		e.mu.Unlock()
		var chunk []byte
		switch {
		case off < fileLen:
			if r.rf == nil {
				return errors.New("mesh: pack cache: temporary pack unreadable")
			}
			n := min(int64(len(buf)), fileLen-off)
			m, rerr := r.rf.ReadAt(buf[:n], off)
			if m == 0 && rerr != nil {
				return rerr
			}
			chunk = buf[:m]
		case off < fileLen+int64(len(tail)):
			chunk = tail[off-fileLen:]
		case done:
			return err
		default:
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		n, werr := w.Write(chunk)
		off += int64(n)
		if served != nil {
			served.Add(int64(n))
		}
		if werr != nil {
			return werr
		}
	}
}
