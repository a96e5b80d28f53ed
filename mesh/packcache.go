package mesh

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitfleet/gitfleet/internal/gitexec"
)

// Defaults of the pack cache (see StoreConfig).
const (
	// DefaultPackCacheMaxBytes is the pack cache's size limit on disk.
	DefaultPackCacheMaxBytes = 1 << 30
	// DefaultPackCacheMaxAge is how long a cached pack that nobody asks for is kept.
	DefaultPackCacheMaxAge = time.Hour
)

// packEnv tells the pack-objects hook that the store's pipes are descriptors 3
// (answers from the store) and 4 (requests to the store).
const packEnv = "GITFLEET_PACK"

// packHookName is the hook's file in the store's private directory.
const packHookName = "pack-objects-hook"

// packHookScript is uploadpack.packObjectsHook for every upload-pack the store
// starts. git runs it as `<hook> git [--shallow-file ""] pack-objects <args>`,
// with the want/have list on stdin, and expects the pack on stdout. The script
// computes nothing: it sends its arguments on descriptor 4, receives on
// descriptor 3 the path of a file to write its stdin to and the path of a FIFO
// to read the pack from, opens the FIFO (the store holds it open for reading
// and writing already, so the open does not wait), writes its stdin, says
// "sent", copies the FIFO to its stdout until the store closes it, and finally
// reads the store's verdict ("ok"). A FIFO loses what it holds when the last
// descriptor closes, so the store writes only once the hook has it open. End
// of file on 3 (the store is gone) makes it fail, so upload-pack fails rather
// than hangs.
const packHookScript = `#!/bin/sh
# gitfleet: hand pack-objects' request to the store, which serves it from its pack cache.
test -n "$` + packEnv + `" || exec "$@"
{ echo "pack $#" && for a in "$@"; do printf '%s\n' "$a"; done; } >&4 || exit 1
IFS= read -r in <&3 || exit 1
IFS= read -r out <&3 || exit 1
exec 5<"$out" || exit 1
cat >"$in" || exit 1
echo sent >&4 || exit 1
cat <&5 || exit 1
read -r status <&3 || exit 1
test "$status" = ok
`

// PackCacheStats are the counters of a store's pack cache (see Store.PackCacheStats).
type PackCacheStats struct {
	Enabled      bool  `json:"enabled"`
	Hits         int64 `json:"hits"`          // requests served from a complete cached pack
	Misses       int64 `json:"misses"`        // requests that started a pack-objects
	Joins        int64 `json:"joins"`         // requests that streamed a pack another request was producing
	Bypassed     int64 `json:"bypassed"`      // packs served but not kept: too big, or writing failed
	Corrupt      int64 `json:"corrupt"`       // cached packs found damaged, removed and regenerated
	Failed       int64 `json:"failed"`        // pack-objects runs that failed
	BytesServed  int64 `json:"bytes_served"`  // bytes sent from cached or shared packs (hits and joins)
	BytesWritten int64 `json:"bytes_written"` // bytes written to the cache
	Evictions    int64 `json:"evictions"`     // cached packs removed for size or age
	Queued       int64 `json:"queued"`        // pack-objects runs that waited for a per-repository slot
	Entries      int64 `json:"entries"`       // cached packs and answers on disk
	BytesOnDisk  int64 `json:"bytes_on_disk"` // their total size
	// ResponseHits counts protocol v2 fetch requests answered whole from the
	// response cache (git never saw them), and ResponsesWritten the answers
	// it kept; both are 0 with StoreConfig.NoResponseCache.
	ResponseHits     int64 `json:"response_hits"`
	ResponsesWritten int64 `json:"responses_written"`
	// ListHits counts ls-refs requests answered from the cache, and
	// SessionsWithoutGit the protocol v2 sessions answered whole from it
	// (capability advertisement, ls-refs and fetch: no upload-pack started).
	ListHits           int64 `json:"list_hits"`
	SessionsWithoutGit int64 `json:"sessions_without_git"`
}

// packCache serves upload-pack's pack-objects requests (see "Pack cache" in the
// package documentation).
type packCache struct {
	s        *Store
	dir      string // <dir>/<PROJECT>/<slug>/<key>.pack and <dir>/tmp
	hook     string
	maxBytes int64
	maxAge   time.Duration
	limit    int // concurrent pack-objects per repository; 0 = none
	version  string
	// responses turns on the response cache (respcache.go).
	responses bool

	mu       sync.Mutex
	inflight map[string]*packEntry
	slots    map[string]chan struct{}
	verified map[string]verifiedFile
	// capturing holds the answers being captured (respcache.go).
	capturing map[string]bool

	evictMu sync.Mutex

	// failWrite, when set (tests), is called before every write to a cache
	// file; an error it returns is treated as a failed write.
	failWrite func() error

	hits, misses, joins, bypassed, corrupt, failed atomic.Int64
	bytesServed, bytesWritten, evictions, queued   atomic.Int64
	entries, bytesOnDisk                           atomic.Int64
	respHits, respWritten                          atomic.Int64
	listHits, gitless                              atomic.Int64
	running, peak                                  atomic.Int64 // pack-objects runs at once, and the most seen
}

// openPackCache prepares the cache directory and the hook script. It returns nil
// (no cache) when maxBytes is negative or git processes cannot inherit pipes.
func openPackCache(ctx context.Context, s *Store, cfg StoreConfig) (*packCache, error) {
	if cfg.PackCacheMaxBytes < 0 || !inheritsPipes {
		return nil, nil
	}
	v, err := gitexec.CheckVersion(ctx)
	if err != nil {
		return nil, err
	}
	c := &packCache{s: s, dir: cfg.PackCacheDir, maxBytes: cfg.PackCacheMaxBytes, maxAge: cfg.PackCacheMaxAge,
		limit: cfg.MaxPackObjects, version: v.String(), responses: !cfg.NoResponseCache,
		inflight: make(map[string]*packEntry), slots: make(map[string]chan struct{}),
		verified: make(map[string]verifiedFile), capturing: make(map[string]bool)}
	if c.dir == "" {
		c.dir = filepath.Join(s.root, metaDir, "pack-cache")
	}
	if c.dir, err = filepath.Abs(c.dir); err != nil {
		return nil, err
	}
	if c.maxBytes == 0 {
		c.maxBytes = DefaultPackCacheMaxBytes
	}
	if c.maxAge == 0 {
		c.maxAge = DefaultPackCacheMaxAge
	}
	if c.limit == 0 {
		c.limit = runtime.NumCPU()
	}
	if c.limit < 0 {
		c.limit = 0
	}
	tmp := filepath.Join(c.dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	c.hook = filepath.Join(s.root, metaDir, packHookName)
	if cur, err := os.ReadFile(c.hook); err != nil || string(cur) != packHookScript {
		if err := os.WriteFile(c.hook+".new", []byte(packHookScript), 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(c.hook+".new", c.hook); err != nil {
			return nil, err
		}
	}
	c.evict()
	return c, nil
}

// stats returns a snapshot of the counters.
func (c *packCache) stats() PackCacheStats {
	return PackCacheStats{Enabled: true,
		Hits: c.hits.Load(), Misses: c.misses.Load(), Joins: c.joins.Load(), Bypassed: c.bypassed.Load(),
		Corrupt: c.corrupt.Load(), Failed: c.failed.Load(), BytesServed: c.bytesServed.Load(),
		BytesWritten: c.bytesWritten.Load(), Evictions: c.evictions.Load(), Queued: c.queued.Load(),
		Entries: c.entries.Load(), BytesOnDisk: c.bytesOnDisk.Load(),
		ResponseHits: c.respHits.Load(), ResponsesWritten: c.respWritten.Load(),
		ListHits: c.listHits.Load(), SessionsWithoutGit: c.gitless.Load()}
}

// shQuote quotes s for sh, which git runs the hook through.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// packSession connects one upload-pack to the cache through two pipes.
type packSession struct {
	c             *packCache
	project, slug string
	dir           string
	grantR, reqW  *os.File // the child's ends, descriptors 3 and 4
	grantW, reqR  *os.File // the store's ends
	ctx           context.Context
	cancel        context.CancelFunc
	done          chan struct{}
}

// attach configures cmd (an upload-pack) to hand its pack-objects runs to the
// cache: the hook in GIT_CONFIG_COUNT, the pipes as ExtraFiles 3 and 4.
func (c *packCache) attach(ctx context.Context, project, slug, dir string, cmd *exec.Cmd) (*packSession, error) {
	grantR, grantW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		grantR.Close()
		grantW.Close()
		return nil, err
	}
	ps := &packSession{c: c, project: project, slug: slug, dir: dir,
		grantR: grantR, reqW: reqW, grantW: grantW, reqR: reqR, done: make(chan struct{})}
	ps.ctx, ps.cancel = context.WithCancel(ctx)
	cmd.ExtraFiles = []*os.File{grantR, reqW}
	cmd.Env = append(cmd.Env, packEnv+"=1", "GIT_CONFIG_COUNT=1",
		"GIT_CONFIG_KEY_0=uploadpack.packObjectsHook", "GIT_CONFIG_VALUE_0="+shQuote(c.hook))
	go ps.run()
	return ps, nil
}

// close ends the session once upload-pack has exited.
func (ps *packSession) close() {
	ps.grantR.Close()
	ps.reqW.Close()
	ps.cancel()
	ps.reqR.Close() // a hook left behind by a killed upload-pack cannot hold up the end
	<-ps.done
	ps.grantW.Close()
	ps.reqR.Close()
}

// run answers the hook's requests, one pack-objects run after another.
func (ps *packSession) run() {
	defer close(ps.done)
	br := newLineReader(ps.reqR)
	for {
		line, err := br.line()
		if err != nil {
			return
		}
		var n int
		if _, err := fmt.Sscanf(line, "pack %d", &n); err != nil || n < 2 || n > 64 {
			return
		}
		args := make([]string, n)
		for i := range args {
			if args[i], err = br.line(); err != nil {
				return
			}
		}
		if !ps.serve(br, args) {
			return
		}
	}
}

// serve handles one pack-objects request; false ends the session.
func (ps *packSession) serve(br *lineReader, args []string) bool {
	c := ps.c
	tmp := filepath.Join(c.dir, "tmp")
	in, err := os.CreateTemp(tmp, "in-")
	if err != nil {
		return false
	}
	in.Close()
	defer os.Remove(in.Name())
	out := in.Name() + ".out"
	if err := mkfifo(out); err != nil {
		c.s.log.Error("mesh: pack cache: fifo", "err", err)
		return false
	}
	defer os.Remove(out)
	f, err := openFifo(out)
	if err != nil {
		c.s.log.Error("mesh: pack cache: fifo", "err", err)
		return false
	}
	stop := context.AfterFunc(ps.ctx, func() { f.Close() })
	defer stop()
	defer f.Close()
	if _, err := io.WriteString(ps.grantW, in.Name()+"\n"+out+"\n"); err != nil {
		return false
	}
	if l, err := br.line(); err != nil || l != "sent" {
		return false
	}
	stdin, err := os.ReadFile(in.Name())
	if err != nil {
		return false
	}
	err = c.serve(ps.ctx, ps.project, ps.slug, ps.dir, args, stdin, f)
	f.Close()
	verdict := "ok\n"
	if err != nil {
		if ps.ctx.Err() == nil {
			c.s.log.Warn("mesh: pack cache: serving a pack", "project", ps.project, "slug", ps.slug, "err", err)
		}
		verdict = "fail\n"
	}
	_, werr := io.WriteString(ps.grantW, verdict)
	return werr == nil && err == nil
}

// errBadRequest is a hook request that is not pack-objects'.
var errBadRequest = errors.New("mesh: pack cache: not a pack-objects request")

// gitArgs checks the hook's arguments ("git", global options, "pack-objects",
// its options) and returns them without "git".
func gitArgs(args []string) ([]string, error) {
	if len(args) < 2 || args[0] != "git" {
		return nil, errBadRequest
	}
	rest := args[1:]
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case "pack-objects":
			for _, a := range rest[i+1:] {
				if !strings.HasPrefix(a, "--") {
					return nil, errBadRequest
				}
			}
			return rest, nil
		case "--shallow-file":
			i++ // its value
		default:
			return nil, errBadRequest
		}
	}
	return nil, errBadRequest
}

// key returns the cache key of a request: SHA-256 over git's version, the
// arguments, the stdin and the repository's object state (refs, the pack files,
// alternates, config and shallow files), so that any push, fetch, repack or
// configuration change makes earlier entries unreachable.
func (c *packCache) key(dir string, args []string, stdin []byte) (string, error) {
	state, err := c.state(dir)
	if err != nil {
		return "", err
	}
	return c.keyAt(state, args, stdin), nil
}

// keyAt is key with the repository's state already read (see state).
func (c *packCache) keyAt(state []byte, args []string, stdin []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "gitfleet pack cache 1\x00git %s\x00", c.version)
	for _, a := range args {
		fmt.Fprintf(h, "%d:%s\x00", len(a), a)
	}
	fmt.Fprintf(h, "stdin %d\x00", len(stdin))
	h.Write(stdin)
	h.Write(state)
	return hex.EncodeToString(h.Sum(nil))
}

// state digests what a cached answer of the repository at dir depends on
// besides the request: its refs, HEAD, packs, configuration, shallow file and
// alternates.
func (c *packCache) state(dir string) ([]byte, error) {
	h := sha256.New()
	refs, err := readRefs(dir)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(h, "refs %s\x00", HashRefs(refs))
	if head, err := os.ReadFile(filepath.Join(dir, "HEAD")); err == nil {
		fmt.Fprintf(h, "HEAD %d:%s\x00", len(head), head)
	}
	packs, err := os.ReadDir(filepath.Join(dir, "objects", "pack"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, p := range packs { // sorted by name
		if fi, err := p.Info(); err == nil {
			fmt.Fprintf(h, "pack %s %d %d\x00", p.Name(), fi.Size(), fi.ModTime().UnixNano())
		}
	}
	for _, name := range []string{"config", "shallow", "objects/info/alternates"} {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			fmt.Fprintf(h, "%s %d:", name, len(data))
			h.Write(data)
			h.Write([]byte{0})
		}
	}
	return h.Sum(nil), nil
}

// entryPath is where the pack of key for a repository is kept.
func (c *packCache) entryPath(project, slug, key string) string {
	return filepath.Join(c.dir, project, slug, key+".pack")
}

// serve writes the pack for the request to w: from a verified cached pack, from
// the pack another request is producing, or by producing it.
func (c *packCache) serve(ctx context.Context, project, slug, dir string, hookArgs []string, stdin []byte, w io.Writer) error {
	args, err := gitArgs(hookArgs)
	if err != nil {
		return err
	}
	key, err := c.key(dir, args, stdin)
	if err != nil {
		// The request is sound but the cache cannot place it: serve it uncached.
		c.s.log.Warn("mesh: pack cache: no key; serving uncached", "project", project, "slug", slug, "err", err)
		c.bypassed.Add(1)
		cmd := c.s.gitCommand(ctx, dir, nil, args...)
		cmd.Stdin, cmd.Stdout = bytes.NewReader(stdin), w
		var stderr tailBuffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%w: %s", err, stderr.String())
		}
		return nil
	}
	path := c.entryPath(project, slug, key)
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		if e := c.inflight[path]; e != nil {
			r := e.reader()
			c.mu.Unlock()
			c.joins.Add(1)
			return r.copyTo(ctx, w, &c.bytesServed)
		}
		f, err := os.Open(path)
		if err != nil {
			e := c.generate(project, slug, dir, path, args, stdin)
			r := e.reader()
			c.mu.Unlock()
			c.misses.Add(1)
			return r.copyTo(ctx, w, nil)
		}
		c.mu.Unlock()
		served, err := c.serveFile(ctx, f, path, w)
		f.Close()
		if served || err == nil || attempt > 0 {
			return err
		}
		// Damaged or expired and removed: produce it again.
	}
}

// serveFile serves a cached pack after checking its age, length and checksum.
// served reports whether any byte was written; a damaged or expired file is
// removed (unless it was replaced meanwhile) and reported as an error with
// served false.
func (c *packCache) serveFile(ctx context.Context, f *os.File, path string, w io.Writer) (served bool, err error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if time.Since(fi.ModTime()) > c.maxAge {
		c.remove(path, fi, &c.evictions)
		return false, errors.New("expired")
	}
	if !c.isVerified(path, fi) {
		if err := verifyPack(f, fi.Size()); err != nil {
			c.s.log.Warn("mesh: pack cache: removing a damaged pack", "path", path, "err", err)
			c.remove(path, fi, &c.corrupt)
			return false, err
		}
	}
	now := time.Now()
	os.Chtimes(path, now, now) // the access time that eviction goes by
	c.markVerified(path)
	c.hits.Add(1)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	n, err := io.Copy(w, f)
	c.bytesServed.Add(n)
	return true, err
}

// verifiedFile is what a cached pack looked like when its checksum was last
// verified (or when the store wrote it) and its modification time last set.
type verifiedFile struct {
	fi    os.FileInfo
	size  int64
	mtime time.Time
}

// isVerified reports whether the file fi describes is unchanged since this
// store verified it: the same file (inode), length and modification time
// (which the store sets at every use, so any write to it changes it).
func (c *packCache) isVerified(path string, fi os.FileInfo) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.verified[path]
	return ok && os.SameFile(v.fi, fi) && v.size == fi.Size() && v.mtime.Equal(fi.ModTime())
}

// markVerified records the current state of a pack just verified or written.
func (c *packCache) markVerified(path string) {
	fi, err := os.Stat(path)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.verified, path)
		return
	}
	c.verified[path] = verifiedFile{fi, fi.Size(), fi.ModTime()}
}

// remove deletes a cached pack if it is still the file fi describes.
func (c *packCache) remove(path string, fi os.FileInfo, counter *atomic.Int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.verified, path)
	if cur, err := os.Stat(path); err == nil && os.SameFile(cur, fi) {
		if os.Remove(path) == nil {
			counter.Add(1)
			c.entries.Add(-1)
			c.bytesOnDisk.Add(-fi.Size())
		}
	}
}

// verifyPack checks a pack file: "PACK" header, and a trailer that is the
// SHA-1 (or, for SHA-256 repositories, SHA-256) of everything before it.
func verifyPack(f *os.File, size int64) error {
	if size < 12+20 {
		return errors.New("pack too short")
	}
	var hdr [4]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil || string(hdr[:]) != "PACK" {
		return errors.New("not a pack")
	}
	for _, alg := range []struct {
		n   int64
		new func() hash.Hash
	}{{20, sha1.New}, {32, sha256.New}} {
		if size < 12+alg.n {
			continue
		}
		h := alg.new()
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, size-alg.n)); err != nil {
			return err
		}
		trailer := make([]byte, alg.n)
		if _, err := f.ReadAt(trailer, size-alg.n); err != nil {
			return err
		}
		if bytes.Equal(h.Sum(nil), trailer) {
			return nil
		}
	}
	return errors.New("pack checksum mismatch")
}

// slot takes one of the repository's pack-objects slots, waiting in line; the
// returned function gives it back.
func (c *packCache) slot(ctx context.Context, repo string) (func(), error) {
	if c.limit == 0 {
		return func() {}, nil
	}
	c.mu.Lock()
	ch := c.slots[repo]
	if ch == nil {
		ch = make(chan struct{}, c.limit)
		c.slots[repo] = ch
	}
	c.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
		c.queued.Add(1)
		select {
		case ch <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return func() { <-ch }, nil
}

// generate starts pack-objects for a missing entry; c.mu is held. The run
// belongs to the store, not to the request that started it, so the requests
// that join it are served even when the first one hangs up.
func (c *packCache) generate(project, slug, dir, path string, args []string, stdin []byte) *packEntry {
	e := &packEntry{changed: make(chan struct{}), limit: c.maxBytes, failWrite: c.failWrite}
	if f, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), "pack-"); err == nil {
		e.f, e.tmp = f, f.Name()
	} else {
		e.memMode = true
		c.s.log.Warn("mesh: pack cache: cannot write; serving uncached", "err", err)
	}
	c.inflight[path] = e
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		err := c.run(e, project, slug, dir, args, stdin)
		keep := err == nil && !e.isMem() && c.commit(e, path)
		if !keep {
			c.mu.Lock()
			delete(c.inflight, path)
			c.mu.Unlock()
		}
		if e.f != nil {
			e.f.Close()
		}
		if e.tmp != "" {
			os.Remove(e.tmp) // a no-op once renamed
		}
		switch {
		case err != nil:
			c.failed.Add(1)
			c.s.log.Warn("mesh: pack cache: pack-objects failed", "project", project, "slug", slug, "err", err)
		case !keep:
			c.bypassed.Add(1)
		}
		e.finish(err)
		if keep {
			c.evict()
		}
	}()
	return e
}

// run runs pack-objects into e.
func (c *packCache) run(e *packEntry, project, slug, dir string, args []string, stdin []byte) error {
	ctx := c.s.ctx
	release, err := c.slot(ctx, repoKey(project, slug))
	if err != nil {
		return err
	}
	defer release()
	if n := c.running.Add(1); n > c.peak.Load() {
		c.peak.Store(n) // approximate: for tests of the bound
	}
	defer c.running.Add(-1)
	cmd := c.s.gitCommand(ctx, dir, nil, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	cmd.Stdout = e
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s", err, stderr.String())
	}
	return nil
}

// commit verifies a complete temporary pack and renames it into place, and
// takes it out of flight in the same step, so that a request finds either the
// entry (and opens its temporary file) or the cached pack.
func (c *packCache) commit(e *packEntry, path string) bool {
	if err := e.f.Sync(); err != nil {
		return false
	}
	size := e.size()
	if err := verifyPack(e.f, size); err != nil {
		c.s.log.Warn("mesh: pack cache: pack-objects' output does not verify", "err", err)
		return false
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.Rename(e.tmp, path); err != nil {
		return false
	}
	delete(c.inflight, path)
	if fi, err := os.Stat(path); err == nil {
		c.verified[path] = verifiedFile{fi, fi.Size(), fi.ModTime()}
	}
	c.entries.Add(1)
	c.bytesOnDisk.Add(size)
	c.bytesWritten.Add(size)
	return true
}

// dropRepo removes a deleted repository's cached packs.
func (c *packCache) dropRepo(project, slug string) {
	dir := filepath.Join(c.dir, project, slug)
	c.evictMu.Lock()
	os.RemoveAll(dir)
	os.Remove(filepath.Join(c.dir, project))
	c.evictMu.Unlock()
	c.evict()
}

// evict removes packs unused for maxAge, then the least recently used ones
// until the cache holds at most maxBytes, and recounts entries and bytes.
func (c *packCache) evict() {
	c.evictMu.Lock()
	defer c.evictMu.Unlock()
	type ent struct {
		path string
		size int64
		used time.Time
	}
	var all []ent
	tmp := filepath.Join(c.dir, "tmp")
	filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if p == tmp {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".pack") && !strings.HasSuffix(p, respSuffix) {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			all = append(all, ent{p, fi.Size(), fi.ModTime()})
		}
		return nil
	})
	sort.Slice(all, func(i, j int) bool { return all[i].used.After(all[j].used) })
	var total, n int64
	for _, e := range all {
		if time.Since(e.used) > c.maxAge || total+e.size > c.maxBytes {
			if os.Remove(e.path) == nil {
				c.evictions.Add(1)
			}
			c.mu.Lock()
			delete(c.verified, e.path)
			c.mu.Unlock()
			continue
		}
		total += e.size
		n++
	}
	c.entries.Store(n)
	c.bytesOnDisk.Store(total)
}

// tailBuffer keeps the last 4 KiB written to it (pack-objects' stderr).
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimSpace(string(t.b)) }

// lineReader reads newline-terminated lines without reading past them, so
// nothing of a later message is lost between calls.
type lineReader struct{ r io.Reader }

func newLineReader(r io.Reader) *lineReader { return &lineReader{r} }

func (l *lineReader) line() (string, error) {
	var b []byte
	var c [1]byte
	for {
		n, err := l.r.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				return string(b), nil
			}
			if len(b) >= 64<<10 {
				return "", errors.New("line too long")
			}
			b = append(b, c[0])
			continue
		}
		if err != nil {
			return "", err
		}
	}
}

// PackCacheStats returns the pack cache's counters; Enabled is false when the
// cache is off (StoreConfig.PackCacheMaxBytes negative, or Windows).
func (s *Store) PackCacheStats() PackCacheStats {
	if s.packs == nil {
		return PackCacheStats{}
	}
	return s.packs.stats()
}
