package mesh

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gitfleet/gitfleet"
)

// DefaultLFSMaxObjectSize is the largest Git LFS object a store accepts unless
// StoreConfig.LFSMaxObjectSize says otherwise: 5 GiB.
const DefaultLFSMaxObjectSize = 5 << 30

// lfsListLimit is the most locks one list-lock answer holds, and its default.
const (
	lfsListLimit   = 1000
	lfsListDefault = 100
)

// The layout of a repository's Git LFS data, under <repo>.git/lfs.
const (
	lfsDirName      = "lfs"
	lfsObjectsDir   = "objects"    // objects/<oid[0:2]>/<oid[2:4]>/<oid>, as git-lfs keeps them
	lfsIncomingDir  = "incoming"   // uploads being received, renamed into objects when checked
	lfsLocksFile    = "locks.json" // the file locks, replaced by a rename
	lfsCapabilities = "version=1\nlocking\n"
)

// lfsError is a failed Git LFS request: an HTTP status and a message for the user.
type lfsError struct {
	status int
	msg    string
}

func (e *lfsError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func lfsErr(status int, format string, args ...any) error {
	return &lfsError{status: status, msg: fmt.Sprintf(format, args...)}
}

// lfsSession serves one git-lfs-transfer connection.
type lfsSession struct {
	s       *Store
	dir     string // the repository
	op      string // gitfleet.LFSUpload or gitfleet.LFSDownload
	user    string
	maxSize int64 // negative: no limit
	r       *pktReader
	w       *pktWriter
}

// serveLFS speaks Git LFS's SSH transfer protocol (git-lfs-transfer, version 1)
// for a repository until the client quits or goes away; see "Git LFS" in the
// package documentation.
func (s *Store) serveLFS(ctx context.Context, req gitfleet.GitRequest, p, sl string, attach attachFunc) error {
	if req.LFSOperation != gitfleet.LFSUpload && req.LFSOperation != gitfleet.LFSDownload {
		return fmt.Errorf("%w: git-lfs-transfer operation %q (want upload or download)", ErrUnknownService, req.LFSOperation)
	}
	_, _, dir, err := s.openRepo(p, sl)
	if err != nil {
		return err
	}
	stdin, stdout, err := attach()
	if err != nil {
		return err
	}
	ls := &lfsSession{s: s, dir: dir, op: req.LFSOperation, user: req.User, maxSize: s.lfsMaxSize,
		r: newPktReader(stdin), w: newPktWriter(stdout)}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			// A read blocked on a client that went silent returns once the caller
			// closes the connection; a connection with a deadline stops now.
			if d, ok := stdin.(interface{ SetReadDeadline(time.Time) error }); ok {
				d.SetReadDeadline(time.Now())
			}
		case <-done:
		}
	}()
	return ls.serve(ctx)
}

func (ls *lfsSession) serve(ctx context.Context) error {
	for _, c := range strings.Split(strings.TrimSuffix(lfsCapabilities, "\n"), "\n") {
		ls.w.line(c)
	}
	ls.w.flushPkt()
	if err := ls.w.send(); err != nil {
		return nil // the client is gone
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		kind, data, err := ls.r.next()
		if errors.Is(err, io.EOF) {
			return nil // the client left without quit
		}
		if err != nil {
			return fmt.Errorf("mesh: git-lfs-transfer: %w", err)
		}
		if kind != pktData {
			return fmt.Errorf("mesh: git-lfs-transfer: a command must start with a data packet")
		}
		command := pktText(data)
		args, hasBody, err := ls.readArgs()
		if err != nil {
			return fmt.Errorf("mesh: git-lfs-transfer: %s: %w", command, err)
		}
		quit, err := ls.dispatch(command, args, hasBody)
		if err != nil {
			return err
		}
		if err := ls.w.send(); err != nil || quit {
			return nil
		}
	}
}

// readArgs reads "key=value" packets up to a delim-pkt (a body follows) or a
// flush-pkt (the request ends).
func (ls *lfsSession) readArgs() (map[string]string, bool, error) {
	args := map[string]string{}
	for {
		kind, data, err := ls.r.next()
		if err != nil {
			return nil, false, err
		}
		switch kind {
		case pktFlush:
			return args, false, nil
		case pktDelim:
			return args, true, nil
		}
		k, v, _ := strings.Cut(pktText(data), "=")
		if len(args) >= 64 {
			return nil, false, errors.New("too many arguments")
		}
		args[k] = v
	}
}

// readLines reads text packets up to a flush-pkt, at most max of them.
func (ls *lfsSession) readLines(max int) ([]string, error) {
	var lines []string
	for {
		kind, data, err := ls.r.next()
		if err != nil {
			return nil, err
		}
		switch kind {
		case pktFlush:
			return lines, nil
		case pktDelim:
			return nil, errors.New("unexpected delimiter")
		}
		if len(lines) >= max {
			return nil, fmt.Errorf("more than %d lines", max)
		}
		lines = append(lines, pktText(data))
	}
}

// dispatch answers one request. It returns quit for "quit", and an error only
// when the connection cannot go on (the framing is lost).
func (ls *lfsSession) dispatch(command string, args map[string]string, hasBody bool) (quit bool, err error) {
	verb, arg, _ := strings.Cut(command, " ")
	if hasBody && verb != "batch" && verb != "put-object" {
		// A body this command has no use for: read past it to stay in step.
		if _, err := io.Copy(io.Discard, &pktDataReader{p: ls.r}); err != nil {
			return false, fmt.Errorf("mesh: git-lfs-transfer: %s: %w", verb, err)
		}
	}
	var rerr error
	switch verb {
	case "version":
		if arg != "1" {
			rerr = lfsErr(400, "unsupported protocol version %q: this server speaks version 1", arg)
			break
		}
		ls.status(200, nil)
	case "quit":
		ls.status(200, nil)
		return true, nil
	case "batch":
		var lines []string
		if hasBody {
			if lines, err = ls.readLines(100000); err != nil {
				return false, fmt.Errorf("mesh: git-lfs-transfer: batch: %w", err)
			}
		}
		rerr = ls.batch(args, lines)
	case "put-object":
		if !hasBody {
			rerr = lfsErr(400, "put-object without data")
			break
		}
		rerr = ls.putObject(arg, args)
		var le *lfsError
		if rerr != nil && !errors.As(rerr, &le) {
			return false, rerr // the data stream broke off
		}
	case "verify-object":
		rerr = ls.verifyObject(arg, args)
	case "get-object":
		rerr = ls.getObject(arg)
	case "lock":
		rerr = ls.lock(args)
	case "unlock":
		rerr = ls.unlock(arg)
	case "list-lock", "list-locks": // git-lfs 3.3 sends the second when it verifies locks
		rerr = ls.listLocks(args)
	default:
		rerr = lfsErr(400, "unknown command %q", lfsPrintable(verb))
	}
	var le *lfsError
	if errors.As(rerr, &le) {
		ls.w.line(fmt.Sprintf("status %d", le.status))
		ls.w.delimPkt()
		if verb == "get-object" {
			ls.w.data([]byte(le.msg))
		} else {
			ls.w.line("message " + le.msg)
		}
		ls.w.flushPkt()
	} else if rerr != nil {
		return false, rerr
	}
	return false, nil
}

// status writes a bodiless answer: "status N", arguments, flush-pkt.
func (ls *lfsSession) status(code int, args []string) {
	ls.w.line(fmt.Sprintf("status %d", code))
	for _, a := range args {
		ls.w.line(a)
	}
	ls.w.flushPkt()
}

// parseOID checks an object id: 64 lowercase hex digits (SHA-256).
func parseOID(oid string) error {
	if len(oid) != 64 {
		return lfsErr(400, "invalid object id %q: want 64 hex digits", lfsPrintable(oid))
	}
	for i := 0; i < len(oid); i++ {
		if c := oid[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return lfsErr(400, "invalid object id %q: want 64 lowercase hex digits", lfsPrintable(oid))
		}
	}
	return nil
}

// lfsPrintable shortens a client's string for a message and makes it valid UTF-8.
func lfsPrintable(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

func parseLFSSize(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, lfsErr(400, "invalid size %q", lfsPrintable(s))
	}
	return n, nil
}

func (ls *lfsSession) objectPath(oid string) string {
	return filepath.Join(ls.dir, lfsDirName, lfsObjectsDir, oid[0:2], oid[2:4], oid)
}

// objectSize returns the size of a stored object, or -1 when it is missing.
func (ls *lfsSession) objectSize(oid string) int64 {
	fi, err := os.Stat(ls.objectPath(oid))
	if err != nil || !fi.Mode().IsRegular() {
		return -1
	}
	return fi.Size()
}

// batch answers which objects the client is to transfer: for an upload those
// the repository lacks ("upload") and those it has ("noop"); for a download
// those it has ("download"); one it lacks is listed as "noop", so git-lfs
// reports it missing.
func (ls *lfsSession) batch(args map[string]string, lines []string) error {
	if h, ok := args["hash-algo"]; ok && h != "sha256" {
		return lfsErr(409, "unsupported hash algorithm %q: this server stores sha256", lfsPrintable(h))
	}
	out := make([]string, 0, len(lines))
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 2 {
			return lfsErr(400, "malformed batch line %q", lfsPrintable(line))
		}
		oid := f[0]
		if err := parseOID(oid); err != nil {
			return err
		}
		size, err := parseLFSSize(f[1])
		if err != nil {
			return err
		}
		have := ls.objectSize(oid)
		if have >= 0 && ls.op == gitfleet.LFSUpload {
			touchLFS(ls.objectPath(oid)) // a push may be about to reference it
		}
		action := "noop"
		switch {
		case ls.op == gitfleet.LFSUpload && have != size:
			if ls.maxSize >= 0 && size > ls.maxSize {
				return lfsErr(413, "object %s is %d bytes, more than this server's limit of %d", oid, size, ls.maxSize)
			}
			action = "upload"
		case ls.op == gitfleet.LFSDownload && have >= 0:
			size, action = have, "download"
		}
		out = append(out, fmt.Sprintf("%s %d %s", oid, size, action))
	}
	ls.w.line("status 200")
	ls.w.line("hash-algo=sha256")
	ls.w.delimPkt()
	for _, l := range out {
		ls.w.line(l)
	}
	ls.w.flushPkt()
	return nil
}

// putObject receives an object into incoming and moves it into place once its
// size and SHA-256 match; nothing partial is ever in objects. An error that is
// not an *lfsError means the data stream itself failed.
func (ls *lfsSession) putObject(oid string, args map[string]string) error {
	body := &pktDataReader{p: ls.r}
	drain := func(err error) error {
		if _, derr := io.Copy(io.Discard, body); derr != nil {
			return derr
		}
		return err
	}
	if ls.op != gitfleet.LFSUpload {
		return drain(lfsErr(403, "objects can be uploaded only in an upload session"))
	}
	if err := parseOID(oid); err != nil {
		return drain(err)
	}
	size, err := parseLFSSize(args["size"])
	if err != nil {
		return drain(err)
	}
	if ls.maxSize >= 0 && size > ls.maxSize {
		return drain(lfsErr(413, "object %s is %d bytes, more than this server's limit of %d", oid, size, ls.maxSize))
	}
	incoming := filepath.Join(ls.dir, lfsDirName, lfsIncomingDir)
	if err := os.MkdirAll(incoming, 0o755); err != nil {
		return drain(storageErr(err))
	}
	f, err := os.CreateTemp(incoming, oid[:16]+"-")
	if err != nil {
		return drain(storageErr(err))
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	h := sha256.New()
	var file io.Writer = f
	if lfsTestWriter != nil {
		file = lfsTestWriter(f)
	}
	// One byte more than declared tells a longer object from an exact one.
	n, werr := io.Copy(io.MultiWriter(file, h), io.LimitReader(body, size+1))
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		var pe *fs.PathError
		if errors.As(werr, &pe) {
			return drain(storageErr(werr)) // writing the file failed
		}
		return werr // reading the client's data failed
	}
	if n > size {
		return drain(lfsErr(400, "object %s: more data than its declared size %d", oid, size))
	}
	if err := drain(nil); err != nil {
		return err
	}
	if n != size {
		return lfsErr(400, "object %s: received %d bytes, declared %d", oid, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != oid {
		return lfsErr(400, "object %s: the data's SHA-256 is %s", oid, got)
	}
	dst := ls.objectPath(oid)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return storageErr(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return storageErr(err)
	}
	ls.s.log.Info("mesh: lfs object stored", "dir", ls.dir, "oid", oid, "size", size, "user", ls.user)
	ls.status(200, nil)
	return nil
}

// lfsTestWriter, when a test sets it, wraps the file an upload is written to
// (to make writes fail as on a full disk).
var lfsTestWriter func(f *os.File) io.Writer

// storageErr is the answer to a failed write to the store's disk.
func storageErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return lfsErr(507, "the server's disk is full; nothing was stored")
	}
	return lfsErr(500, "the server could not store the object; nothing was stored")
}

func (ls *lfsSession) verifyObject(oid string, args map[string]string) error {
	if err := parseOID(oid); err != nil {
		return err
	}
	size, err := parseLFSSize(args["size"])
	if err != nil {
		return err
	}
	switch have := ls.objectSize(oid); {
	case have < 0:
		return lfsErr(404, "object %s is not on the server", oid)
	case have != size:
		return lfsErr(409, "object %s is %d bytes on the server, not %d", oid, have, size)
	}
	touchLFS(ls.objectPath(oid))
	ls.status(200, nil)
	return nil
}

func (ls *lfsSession) getObject(oid string) error {
	if err := parseOID(oid); err != nil {
		return err
	}
	f, err := os.Open(ls.objectPath(oid))
	if err != nil {
		return lfsErr(404, "object %s is not on the server", oid)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return lfsErr(500, "object %s cannot be read", oid)
	}
	ls.w.line("status 200")
	ls.w.line(fmt.Sprintf("size=%d", fi.Size()))
	ls.w.delimPkt()
	if _, err := io.Copy(ls.w, f); err != nil {
		return fmt.Errorf("mesh: git-lfs-transfer: reading object %s: %w", oid, err)
	}
	ls.w.flushPkt()
	return nil
}

// lfsLock is one file lock, as locks.json keeps it.
type lfsLock struct {
	ID       string    `json:"id"`
	Path     string    `json:"path"`
	Owner    string    `json:"owner"`
	LockedAt time.Time `json:"lockedAt"`
	Ref      string    `json:"ref,omitempty"`
}

func (l lfsLock) args() []string {
	return []string{"id=" + l.ID, "path=" + l.Path, "locked-at=" + l.LockedAt.Format(time.RFC3339), "ownername=" + l.Owner}
}

// withLocks runs f on the repository's locks under the store's lock mutex and,
// when f reports a change, writes them back (a temporary file renamed over
// locks.json).
func (ls *lfsSession) withLocks(f func(locks []lfsLock) ([]lfsLock, bool, error)) error {
	ls.s.lfsMu.Lock()
	defer ls.s.lfsMu.Unlock()
	path := filepath.Join(ls.dir, lfsDirName, lfsLocksFile)
	var locks []lfsLock
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &locks); err != nil {
			ls.s.log.Error("mesh: lfs locks file is corrupt", "file", path, "err", err)
			return lfsErr(500, "the server's lock list is damaged")
		}
	case !errors.Is(err, fs.ErrNotExist):
		return lfsErr(500, "the server cannot read its lock list")
	}
	locks, changed, err := f(locks)
	if err != nil || !changed {
		return err
	}
	out, err := json.Marshal(locks)
	if err != nil {
		return lfsErr(500, "the server cannot write its lock list")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return storageErr(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		os.Remove(tmp)
		return storageErr(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return storageErr(err)
	}
	return nil
}

func (ls *lfsSession) lock(args map[string]string) error {
	if ls.op != gitfleet.LFSUpload {
		return lfsErr(403, "locks can be taken only in an upload session")
	}
	path := args["path"]
	if path == "" || len(path) > 4096 || strings.ContainsAny(path, "\x00\n") {
		return lfsErr(400, "lock: a path is required")
	}
	var taken lfsLock
	var conflict *lfsLock
	err := ls.withLocks(func(locks []lfsLock) ([]lfsLock, bool, error) {
		for i := range locks {
			if locks[i].Path == path {
				conflict = &locks[i]
				return locks, false, nil
			}
		}
		id := make([]byte, 16)
		rand.Read(id)
		taken = lfsLock{ID: hex.EncodeToString(id), Path: path, Owner: ls.owner(), LockedAt: time.Now().UTC().Truncate(time.Second), Ref: args["refname"]}
		return append(locks, taken), true, nil
	})
	if err != nil {
		return err
	}
	if conflict != nil {
		ls.w.line("status 409")
		for _, a := range conflict.args() {
			ls.w.line(a)
		}
		ls.w.delimPkt()
		ls.w.line("message " + conflict.Path + " is already locked by " + conflict.Owner)
		ls.w.flushPkt()
		return nil
	}
	ls.s.log.Info("mesh: lfs lock taken", "dir", ls.dir, "path", path, "user", ls.user, "id", taken.ID)
	ls.status(201, taken.args())
	return nil
}

// owner is the name locks record for the session's user.
func (ls *lfsSession) owner() string {
	if ls.user == "" {
		return "unknown"
	}
	return ls.user
}

// unlock releases a lock its owner holds. git-lfs 3.3 does not send --force over
// SSH, so a lock held by someone else stays (refused with its owner's name).
func (ls *lfsSession) unlock(id string) error {
	if ls.op != gitfleet.LFSUpload {
		return lfsErr(403, "locks can be released only in an upload session")
	}
	var released lfsLock
	err := ls.withLocks(func(locks []lfsLock) ([]lfsLock, bool, error) {
		for i, l := range locks {
			if l.ID != id {
				continue
			}
			if l.Owner != ls.owner() {
				return nil, false, lfsErr(403, "the lock on %s is held by %s", l.Path, l.Owner)
			}
			released = l
			return slices.Delete(locks, i, i+1), true, nil
		}
		return nil, false, lfsErr(404, "no lock %q", lfsPrintable(id))
	})
	if err != nil {
		return err
	}
	ls.s.log.Info("mesh: lfs lock released", "dir", ls.dir, "path", released.Path, "user", ls.user, "id", id)
	ls.status(200, released.args())
	return nil
}

// listLocks lists locks, filtered by path or id, limit at a time from cursor
// (the id after which to go on), with next-cursor when more follow.
func (ls *lfsSession) listLocks(args map[string]string) error {
	limit := lfsListDefault
	if v, ok := args["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return lfsErr(400, "invalid limit %q", lfsPrintable(v))
		}
		limit = min(n, lfsListLimit)
	}
	var all []lfsLock
	if err := ls.withLocks(func(locks []lfsLock) ([]lfsLock, bool, error) {
		all = locks
		return locks, false, nil
	}); err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b lfsLock) int { return strings.Compare(a.ID, b.ID) })
	var out []lfsLock
	next := ""
	for _, l := range all {
		if c := args["cursor"]; c != "" && l.ID <= c {
			continue
		}
		if (args["path"] != "" && l.Path != args["path"]) || (args["id"] != "" && l.ID != args["id"]) {
			continue
		}
		if len(out) == limit {
			next = out[len(out)-1].ID
			break
		}
		out = append(out, l)
	}
	ls.w.line("status 200")
	if next != "" {
		ls.w.line("next-cursor=" + next)
	}
	ls.w.delimPkt()
	for _, l := range out {
		who := "theirs"
		if l.Owner == ls.owner() {
			who = "ours"
		}
		ls.w.line("lock " + l.ID)
		ls.w.line("path " + l.ID + " " + l.Path)
		ls.w.line("locked-at " + l.ID + " " + l.LockedAt.Format(time.RFC3339))
		ls.w.line("ownername " + l.ID + " " + l.Owner)
		ls.w.line("owner " + l.ID + " " + who)
	}
	ls.w.flushPkt()
	return nil
}
