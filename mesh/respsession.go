package mesh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// A protocol v2 session that the response cache can answer whole runs no git
// at all: the capability advertisement, each ls-refs answer and each fetch
// answer come from cached files, and upload-pack, which costs a process start,
// its configuration and a read of the refs for every CI poll, never starts.
// serveSession answers requests from the cache until one misses; from there
// git serves the rest of the session as it always did, with the request that
// missed as its first input and its own capability advertisement dropped (the
// client has one). Protocol v2 has no state between commands, so a session
// that git joins late is the same to the client.
//
// Keys are the response cache's (the exact request bytes, the git version and
// the repository's object state, refs and configuration included), with a
// marker for each kind of answer; the capability advertisement's depends on
// the git version and the repository's configuration only. An ls-refs answer
// is looked up with the state read under the repository's read lock, and kept
// only from a git that answered under it (the first command of its session,
// see v2LockReader), with the key computed under the same hold, so that a kept
// answer always describes the state its key names; the session's fetch
// requests are then looked up for that state. A capability advertisement that
// names a session id (transfer.advertiseSID) differs in every session and is
// never kept.

const (
	advKeyArg  = "gitfleet-v2-capabilities"
	listKeyArg = "gitfleet-v2-ls-refs"
)

// isCommand reports whether req, a v2 request, is the command cmd
// ("command=ls-refs").
func isCommand(req, cmd []byte) bool {
	end, ok := firstPktEnd(req)
	return ok && end > 4 && bytes.Equal(bytes.TrimSuffix(req[4:end], []byte("\n")), cmd)
}

// answerPath is where the cached answer of kind to req is kept, for the
// repository's state now.
func (c *packCache) answerPath(project, slug, dir, kind string, req []byte) (string, error) {
	state, err := c.state(dir)
	if err != nil {
		return "", err
	}
	return c.answerPathAt(project, slug, state, kind, req), nil
}

// answerPathAt is answerPath for a state read earlier.
func (c *packCache) answerPathAt(project, slug string, state []byte, kind string, req []byte) string {
	path := c.entryPath(project, slug, c.keyAt(state, []string{kind}, req))
	return path[:len(path)-len(".pack")] + respSuffix
}

// serveCached writes the cached answer at path to the client. hit is false when
// there is none (or it was damaged); err is a failed write to the client.
func (f *fetchCache) serveCached(path string, hits *atomic.Int64) (hit bool, err error) {
	file, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer file.Close()
	return f.c.serveResponse(file, path, f.client, hits)
}

// serveSession answers the session from the cache for as long as it can.
// served reports that the session ended without git (err is then the
// client's failure, or nil). Otherwise git must serve the rest: f holds the
// request that missed, and tap is the writer git's output must go through
// (to drop git's capability advertisement, or to keep it), whose close drops
// an unfinished capture.
func (f *fetchCache) serveSession() (served bool, tap advTap, err error) {
	c := f.c
	advPath, err := c.advertPath(f.project, f.slug, f.dir)
	if err != nil {
		return false, newAdvPass(f.capture, nil), nil
	}
	hit, err := f.serveCached(advPath, nil)
	if err != nil {
		return true, nil, err
	}
	if !hit {
		keep := &respCapture{w: f.capture, c: c, noSID: true}
		keep.arm(advPath, false)
		return false, newAdvPass(keep, keep), nil
	}
	drop := newAdvDrop(f.capture)
	for {
		if err := f.ctx.Err(); err != nil {
			return true, nil, err
		}
		req, complete, err := f.readRequest()
		switch {
		case complete && len(req) == 4: // a flush-pkt alone: the client is done
			c.gitless.Add(1)
			return true, nil, nil
		case !complete && len(req) == 0 && errors.Is(err, io.EOF): // the client left between commands
			c.gitless.Add(1)
			return true, nil, nil
		case !complete && len(req) == 0 && err != nil:
			return true, nil, err
		case !complete: // a fragment, or input the cache does not parse: git judges it
			f.pending, f.err = req, err
			return false, drop, nil
		}
		if isCommand(req, lsRefsCommand) {
			hit, err := f.cachedList(req)
			if err != nil {
				return true, nil, err
			}
			if hit {
				continue
			}
			f.lsReq = req
		} else if f.answer(req) {
			if f.err != nil {
				return true, nil, f.err
			}
			continue
		}
		f.pending = req
		return false, drop, nil
	}
}

// cachedList answers an ls-refs request from the cache when it can. The
// repository's state is read under its read lock, as git reads the refs for
// ls-refs, and the session's later fetch requests are looked up for the same
// state (the refs the client was told of), which saves reading it again.
func (f *fetchCache) cachedList(req []byte) (bool, error) {
	if err := f.lock.RLock(f.ctx); err != nil {
		return false, err
	}
	state, err := f.c.state(f.dir)
	f.lock.RUnlock()
	if err != nil {
		return false, nil
	}
	f.state = state
	return f.serveCached(f.c.answerPathAt(f.project, f.slug, state, listKeyArg, req), &f.c.listHits)
}

// advertPath is where the capability advertisement of the repository at dir
// is kept: it depends on git's version and the configuration, not on the
// refs.
func (c *packCache) advertPath(project, slug, dir string) (string, error) {
	config, err := os.ReadFile(filepath.Join(dir, "config"))
	if err != nil {
		return "", err
	}
	return c.answerPathAt(project, slug, config, advKeyArg, nil), nil
}

// armList starts keeping git's answer to the ls-refs request it is about to
// read. v2LockReader calls it with the read lock held, which git's answer is
// produced under; tap says whether git's capability advertisement has passed
// (a client that sends ls-refs before reading the advertisement must not have
// it kept as the answer).
func (f *fetchCache) armList(tap advTap) {
	if f.lsReq == nil || tap == nil || !tap.hasEnded() {
		return
	}
	path, err := f.c.answerPath(f.project, f.slug, f.dir, listKeyArg, f.lsReq)
	if err != nil {
		return
	}
	f.capture.arm(path, false)
}

// advTap is what git's output passes through before the response capture: it
// knows when git's capability advertisement has ended.
type advTap interface {
	io.Writer
	hasEnded() bool
	close()
}

// advPass passes git's output on, following the advertisement's framing; w
// is the response capture, or keep, which keeps the advertisement on its way
// there.
type advPass struct {
	w     io.Writer
	keep  *respCapture // nil: the advertisement is not kept
	scan  advScanner   // to the capability advertisement's flush-pkt
	ended atomic.Bool  // scan.finished, for other goroutines
}

func newAdvPass(w io.Writer, keep *respCapture) *advPass {
	return &advPass{w: w, keep: keep, scan: advScanner{need: 1}}
}

func (a *advPass) Write(p []byte) (int, error) {
	if !a.scan.finished {
		if _, end := a.scan.feed(p); end {
			a.ended.Store(true)
		}
	}
	return a.w.Write(p)
}

func (a *advPass) hasEnded() bool { return a.ended.Load() }

func (a *advPass) close() {
	if a.keep != nil {
		a.keep.close()
	}
}

// advDrop drops git's capability advertisement (the client was sent the
// cached one) and passes the rest on.
type advDrop struct {
	w    io.Writer
	scan advScanner
}

func newAdvDrop(w io.Writer) *advDrop { return &advDrop{w: w, scan: advScanner{need: 1}} }

func (a *advDrop) Write(p []byte) (int, error) {
	n := len(p)
	if !a.scan.finished {
		k, _ := a.scan.feed(p)
		p = p[k:]
	}
	if len(p) > 0 {
		if _, err := a.w.Write(p); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// hasEnded is true from the start: what git advertises never reaches the
// client, which has had the cached advertisement.
func (a *advDrop) hasEnded() bool { return true }
func (a *advDrop) close()         {}

// runSession runs f.serveSession until it ends or ctx does. In the second
// case it interrupts the client's read through SetReadDeadline when stdin has
// it; otherwise the session's goroutine ends at its next read (the caller
// closes stdin), and nothing more reaches the client.
func runSession(ctx context.Context, f *fetchCache, stdin io.Reader) (served bool, tap advTap, err error) {
	type result struct {
		served bool
		tap    advTap
		err    error
	}
	done := make(chan result, 1)
	go func() {
		served, tap, err := f.serveSession()
		done <- result{served, tap, err}
	}()
	select {
	case r := <-done:
		return r.served, r.tap, r.err
	case <-ctx.Done():
	}
	f.capture.stop()
	if d, ok := stdin.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
		r := <-done
		d.SetReadDeadline(time.Time{})
		if r.tap != nil {
			r.tap.close()
		}
	} else {
		go func() { // ends with the caller's stdin
			if r := <-done; r.tap != nil {
				r.tap.close() // an advertisement capture it may have started
			}
		}()
	}
	return true, nil, ctx.Err()
}
