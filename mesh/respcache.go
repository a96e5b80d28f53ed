package mesh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The response cache sits beside the pack cache, one level up: for a protocol
// v2 client it keeps upload-pack's whole answer to a fetch command (the
// sections and the side-band packfile, up to the closing flush-pkt), keyed by
// the exact request bytes and the repository's object state, as the pack
// cache keys a pack. A later identical request is answered from the file
// without passing the command to git at all: upload-pack still starts (it
// sends the capability advertisement and answers ls-refs, under the read lock
// as always), but neither it nor pack-objects nor the pack-objects hook moves
// the pack, which is what a warm clone of a large repository spends its CPU
// on. A request that misses goes to git as before (so the pack cache and its
// shared in-flight packs serve it), and the answer is captured on its way to
// the client.
//
// Only requests that end the negotiation (a "done" line, or no "have" line)
// and answers that carry a packfile are kept. An answer is written to a
// temporary file with a SHA-256 trailer and renamed into place when it ended
// with its flush-pkt; the trailer is checked once per file version and the
// length at every hit, and a damaged file is removed and the request served by
// git. Answers share the pack cache's directory, size and age limits and
// eviction; StoreConfig.NoResponseCache turns this level off.

// respSuffix names a cached answer beside the cached packs.
const respSuffix = ".resp"

// maxFetchRequest bounds a request the cache looks at; a longer one (many
// haves) passes to git uncached.
const maxFetchRequest = 1 << 20

// respKeyArg marks a response key apart from every pack key.
const respKeyArg = "gitfleet-v2-fetch-response"

var (
	sessionIDLine = []byte("session-id=")
	fetchCommand  = []byte("command=fetch")
	doneLine      = []byte("done")
	haveLine      = []byte("have ")
	packfileLine  = []byte("packfile")
)

// maxLinePrefix is how much of each answer line a capture looks at.
const maxLinePrefix = 16

// fetchCache reads a v2 client's requests for git and answers cached fetch
// commands itself (see the response cache above).
type fetchCache struct {
	c             *packCache
	project, slug string
	dir           string
	br            *bufio.Reader // the client
	client        io.Writer     // straight to the client, for cached answers
	capture       *respCapture  // git's output on its way to the client

	pending []byte // bytes for git
	raw     bool   // past something the cache does not parse: pass through
	err     error

	// For answering a whole session without git (serveSession).
	ctx   context.Context
	lock  *rwLock // the repository's: ls-refs answers are looked up under its read lock
	lsReq []byte  // the last ls-refs request passed to git
	state []byte  // the repository's state at the session's cached ls-refs; nil without one
}

func (c *packCache) newFetchCache(ctx context.Context, project, slug, dir string, lock *rwLock, client io.Reader, out io.Writer) (*fetchCache, *respCapture) {
	rc := &respCapture{w: out, c: c}
	return &fetchCache{c: c, project: project, slug: slug, dir: dir, ctx: ctx, lock: lock,
		br: bufio.NewReaderSize(client, 64<<10), client: &lockedWriter{mu: &rc.wmu, stopped: &rc.stopped, w: out}, capture: rc}, rc
}

// lockedWriter writes to w under mu: a cached answer goes to the client
// from the goroutine that reads the client, git's output from another, and
// the client's writer (the SSH channel's pacer, say) is not safe for both at
// once. The protocol already orders them (the client asks for the next
// command only after the whole previous answer), but a writer's bookkeeping
// may still run when the client has read the last byte.
type lockedWriter struct {
	mu      *sync.Mutex
	stopped *bool // under mu: the session has ended, nothing more may be written
	w       io.Writer
}

// errSessionEnded is a write to the client after ServeGit returned.
var errSessionEnded = errors.New("mesh: the git session has ended")

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if *l.stopped {
		return 0, errSessionEnded
	}
	return l.w.Write(p)
}

// ReadFrom keeps io.Copy's fast paths (sendfile to a socket).
func (l *lockedWriter) ReadFrom(r io.Reader) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if *l.stopped {
		return 0, errSessionEnded
	}
	return io.Copy(l.w, r)
}

func (f *fetchCache) Read(p []byte) (int, error) {
	for len(f.pending) == 0 {
		if f.raw {
			return f.br.Read(p)
		}
		if f.err != nil {
			return 0, f.err
		}
		req, complete, err := f.readRequest()
		f.err = err
		if complete && f.answer(req) {
			continue
		}
		if complete && isCommand(req, lsRefsCommand) {
			f.lsReq = req
		}
		f.pending = req
	}
	n := copy(p, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// readRequest reads pkt-lines up to and including a flush-pkt. complete
// reports whether it ended there; otherwise the stream switched to pass
// through (input that is not pkt-line framing, or too long) or ended.
func (f *fetchCache) readRequest() (req []byte, complete bool, err error) {
	for {
		hdr, err := f.br.Peek(4)
		if err != nil {
			if len(hdr) > 0 {
				f.raw = true // a fragment: let git judge it
				return req, false, nil
			}
			return req, false, err
		}
		n, perr := strconv.ParseUint(string(hdr), 16, 16)
		if perr != nil || n == 3 || n > 65520 {
			f.raw = true
			return req, false, nil
		}
		size := 4
		if n >= 4 {
			size = int(n)
		}
		if len(req)+size > maxFetchRequest {
			f.raw = true
			return req, false, nil
		}
		start := len(req)
		req = append(req, make([]byte, size)...)
		if _, err := io.ReadFull(f.br, req[start:]); err != nil {
			return req[:start], false, err
		}
		if n == 0 {
			return req, true, nil
		}
	}
}

// answer serves req from the cache when it can and reports whether it did;
// when it cannot but the answer may be kept, it arms the capture.
func (f *fetchCache) answer(req []byte) bool {
	if !cacheableFetch(req) {
		return false
	}
	c := f.c
	state := f.state // the session's, when its ls-refs came from the cache
	if state == nil {
		var err error
		if state, err = c.state(f.dir); err != nil {
			return false
		}
	}
	path := c.answerPathAt(f.project, f.slug, state, respKeyArg, req)
	if file, err := os.Open(path); err == nil {
		ok, werr := c.serveResponse(file, path, f.client, &c.respHits)
		file.Close()
		if werr != nil {
			f.err = werr // the client went away
			return true
		}
		if ok {
			return true
		}
	}
	f.capture.arm(path, true)
	return false
}

// cacheableFetch reports whether req is a v2 fetch command that ends the
// negotiation: git answers it with a packfile that depends only on the
// request and the repository.
func cacheableFetch(req []byte) bool {
	first, done, haves := true, false, false
	for p := req; len(p) >= 4; {
		n, err := strconv.ParseUint(string(p[:4]), 16, 16)
		if err != nil || n > uint64(len(p)) {
			return false
		}
		if n < 4 {
			p = p[4:]
			continue
		}
		line := bytes.TrimSuffix(p[4:n], []byte("\n"))
		if first && !bytes.Equal(line, fetchCommand) {
			return false
		}
		first = false
		done = done || bytes.Equal(line, doneLine)
		haves = haves || bytes.HasPrefix(line, haveLine)
		p = p[n:]
	}
	return !first && (done || !haves)
}

// serveResponse writes a cached answer (less its trailer) to w after checking
// its age, length and (once per file version) its checksum. ok is false, with
// nothing written, for a damaged or expired file, which is removed; err is a
// failed write to w. hits, if not nil, counts the hit.
func (c *packCache) serveResponse(f *os.File, path string, w io.Writer, hits *atomic.Int64) (ok bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return false, nil
	}
	if time.Since(fi.ModTime()) > c.maxAge {
		c.remove(path, fi, &c.evictions)
		return false, nil
	}
	size := fi.Size() - sha256.Size
	if size <= 0 || !c.isVerified(path, fi) && verifyResponse(f, size) != nil {
		c.s.log.Warn("mesh: pack cache: removing a damaged cached answer", "path", path)
		c.remove(path, fi, &c.corrupt)
		return false, nil
	}
	now := time.Now()
	os.Chtimes(path, now, now)
	c.markVerified(path)
	if hits != nil {
		hits.Add(1)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return true, err
	}
	// A LimitedReader of the *os.File lets a *net.TCPConn (the sidecar's
	// connection) send it with sendfile(2).
	n, err := io.Copy(w, &io.LimitedReader{R: f, N: size})
	c.bytesServed.Add(n)
	return true, err
}

// verifyResponse checks a cached answer's SHA-256 trailer.
func verifyResponse(f *os.File, size int64) error {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return err
	}
	var trailer [sha256.Size]byte
	if _, err := f.ReadAt(trailer[:], size); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), trailer[:]) {
		return errors.New("checksum mismatch")
	}
	return nil
}

// respCapture passes git's output to the client and, once armed by a fetch
// request the cache may keep, copies the answer into a temporary file until
// its closing flush-pkt, then keeps it.
type respCapture struct {
	w   io.Writer
	c   *packCache
	wmu sync.Mutex // held around every write to w (see lockedWriter)

	mu       sync.Mutex
	path     string // armed: where the answer goes
	tmp      *os.File
	h        hash.Hash
	size     int64
	hdr      []byte // a pkt-line header split across writes
	skip     int    // payload bytes of the current pkt-line still to come
	line     []byte // the start of the current payload, for "packfile"
	inLine   bool
	packfile bool
	needPack bool // keep the answer only if it carries a packfile (fetch)
	noSID    bool // a capability advertisement: not kept if it names a session id

	stopped bool // under wmu: see lockedWriter
	closed  bool // under mu: see close
}

// arm starts capturing the next answer for path, unless another request is
// capturing it already (the first clones of a storm all miss: one copy is
// enough).
func (r *respCapture) arm(path string, needPack bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.abort()
	if r.closed {
		return // the session has ended (see runSession)
	}
	c := r.c
	c.mu.Lock()
	if c.capturing[path] {
		c.mu.Unlock()
		return
	}
	c.capturing[path] = true
	c.mu.Unlock()
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "resp-")
	if err != nil {
		c.release(path)
		return // served uncached
	}
	r.path, r.tmp, r.h, r.size = path, tmp, sha256.New(), 0
	r.hdr, r.skip, r.line, r.inLine, r.packfile = r.hdr[:0], 0, r.line[:0], false, false
	r.needPack = needPack
}

func (r *respCapture) Write(p []byte) (int, error) {
	r.wmu.Lock()
	var n int
	var err error
	if r.stopped {
		err = errSessionEnded
	} else {
		n, err = r.w.Write(p)
	}
	r.wmu.Unlock()
	r.mu.Lock()
	if r.tmp != nil {
		if err != nil {
			r.abort()
		} else {
			r.feed(p[:n])
		}
	}
	r.mu.Unlock()
	return n, err
}

// feed copies p into the capture and follows the pkt-line framing to the
// answer's end.
func (r *respCapture) feed(p []byte) {
	for len(p) > 0 && r.tmp != nil {
		if r.skip > 0 {
			k := min(r.skip, len(p))
			if r.inLine && len(r.line) <= maxLinePrefix {
				r.line = append(r.line, p[:min(k, maxLinePrefix+1-len(r.line))]...)
			}
			r.write(p[:k])
			r.skip -= k
			p = p[k:]
			if r.skip == 0 && r.inLine {
				r.packfile = r.packfile || bytes.Equal(bytes.TrimSuffix(r.line, []byte("\n")), packfileLine)
				r.inLine = false
				if r.noSID && bytes.HasPrefix(r.line, sessionIDLine) && r.tmp != nil {
					r.abort() // transfer.advertiseSID: different in every session
				}
			}
			continue
		}
		k := min(4-len(r.hdr), len(p))
		r.hdr = append(r.hdr, p[:k]...)
		r.write(p[:k])
		p = p[k:]
		if len(r.hdr) < 4 {
			return
		}
		n, err := strconv.ParseUint(string(r.hdr), 16, 16)
		r.hdr = r.hdr[:0]
		switch {
		case err != nil || n == 3:
			r.abort() // not framing this capture understands
		case n == 0:
			r.commit()
		case n >= 4:
			r.skip, r.line, r.inLine = int(n)-4, r.line[:0], true
		}
	}
}

func (r *respCapture) write(p []byte) {
	if r.size+int64(len(p)) > r.c.maxBytes {
		r.c.bypassed.Add(1)
		r.abort()
		return
	}
	if r.c.failWrite != nil {
		if err := r.c.failWrite(); err != nil {
			r.c.bypassed.Add(1)
			r.abort()
			return
		}
	}
	if _, err := r.tmp.Write(p); err != nil {
		r.c.bypassed.Add(1)
		r.abort()
		return
	}
	r.h.Write(p)
	r.size += int64(len(p))
}

// commit keeps a complete answer that carries a packfile.
func (r *respCapture) commit() {
	tmp, path := r.tmp, r.path
	r.tmp = nil
	defer r.c.release(path)
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	if r.needPack && !r.packfile {
		return
	}
	if _, err := tmp.Write(r.h.Sum(nil)); err != nil {
		r.c.bypassed.Add(1)
		return
	}
	if tmp.Sync() != nil || os.MkdirAll(filepath.Dir(path), 0o755) != nil {
		r.c.bypassed.Add(1)
		return
	}
	c := r.c
	c.mu.Lock()
	err := os.Rename(tmp.Name(), path)
	if err == nil {
		if fi, err := os.Stat(path); err == nil {
			c.verified[path] = verifiedFile{fi, fi.Size(), fi.ModTime()}
		}
	}
	c.mu.Unlock()
	if err != nil {
		return
	}
	c.respWritten.Add(1)
	c.bytesWritten.Add(r.size + sha256.Size)
	c.evict()
}

// abort drops a capture in progress; r.mu is held.
func (r *respCapture) abort() {
	if r.tmp != nil {
		r.tmp.Close()
		os.Remove(r.tmp.Name())
		r.tmp = nil
		r.c.release(r.path)
	}
}

// release ends the capture of path.
func (c *packCache) release(path string) {
	c.mu.Lock()
	delete(c.capturing, path)
	c.mu.Unlock()
}

// stop makes every later write to the client fail (see lockedWriter).
func (r *respCapture) stop() {
	r.wmu.Lock()
	r.stopped = true
	r.wmu.Unlock()
}

// close drops an unfinished capture (git ended, or the client left); no
// capture starts after it.
func (r *respCapture) close() {
	r.mu.Lock()
	r.closed = true
	r.abort()
	r.mu.Unlock()
}
