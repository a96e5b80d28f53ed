package mesh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrLFS is wrapped by a Fetch that could not bring the Git LFS objects its new
// commits point to: the fetch changes no ref.
var ErrLFS = errors.New("mesh: fetch: Git LFS objects")

// lfsPointerMax is the size under which a blob may be an LFS pointer (git-lfs
// writes pointers of about 130 bytes and reads none of 1024 or more).
const lfsPointerMax = 1024

// lfsPointers returns the Git LFS objects (oid -> size) that the blobs reachable
// in gitDir from tips, and not from exclude, point to.
func (s *Store) lfsPointers(ctx context.Context, gitDir string, tips, exclude []string) (map[string]int64, error) {
	if len(tips) == 0 {
		return nil, nil
	}
	var in bytes.Buffer
	for _, t := range tips {
		in.WriteString(t + "\n")
	}
	for _, e := range exclude {
		in.WriteString("^" + e + "\n") // git 2.39 takes no --not in --stdin mode
	}
	list := s.gitCommand(ctx, gitDir, nil, "rev-list", "--objects", "--no-object-names", "--stdin")
	list.Stdin = &in
	var objects, stderr bytes.Buffer
	list.Stdout, list.Stderr = &objects, &stderr
	if err := list.Run(); err != nil {
		return nil, fmt.Errorf("rev-list: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	check := s.gitCommand(ctx, gitDir, nil, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)")
	check.Stdin = &objects
	var kinds bytes.Buffer
	check.Stdout, check.Stderr = &kinds, &stderr
	if err := check.Run(); err != nil {
		return nil, fmt.Errorf("cat-file: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var small bytes.Buffer
	sc := bufio.NewScanner(&kinds)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[1] == "blob" {
			if n, err := strconv.Atoi(f[2]); err == nil && n < lfsPointerMax {
				small.WriteString(f[0] + "\n")
			}
		}
	}
	if small.Len() == 0 {
		return nil, nil
	}
	read := s.gitCommand(ctx, gitDir, nil, "cat-file", "--batch")
	read.Stdin = &small
	var blobs bytes.Buffer
	read.Stdout, read.Stderr = &blobs, &stderr
	if err := read.Run(); err != nil {
		return nil, fmt.Errorf("cat-file: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	out := map[string]int64{}
	br := bufio.NewReader(&blobs)
	for {
		hdr, err := br.ReadString('\n')
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		f := strings.Fields(hdr)
		if len(f) != 3 {
			return nil, fmt.Errorf("cat-file: unexpected %q", hdr)
		}
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("cat-file: unexpected %q", hdr)
		}
		body := make([]byte, n+1) // and the line feed after it
		if _, err := io.ReadFull(br, body); err != nil {
			return nil, err
		}
		if oid, size, ok := parseLFSPointer(body[:n]); ok {
			out[oid] = size
		}
	}
}

// parseLFSPointer reads a Git LFS pointer file (version, oid sha256:<hex>,
// size), as the specification writes it.
func parseLFSPointer(b []byte) (oid string, size int64, ok bool) {
	if !bytes.HasPrefix(b, []byte("version https://git-lfs.github.com/spec/v1\n")) {
		return "", 0, false
	}
	size = -1
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oid sha256:"); ok {
			oid = v
		} else if v, ok := strings.CutPrefix(line, "size "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return "", 0, false
			}
			size = n
		}
	}
	if parseOID(oid) != nil || size < 0 {
		return "", 0, false
	}
	return oid, size, true
}

// lfsObjectPath is where a repository (or staging repository) keeps an object.
func lfsObjectPath(dir, oid string) string {
	return filepath.Join(dir, lfsDirName, lfsObjectsDir, oid[0:2], oid[2:4], oid)
}

// fetchLFS brings the objects in want that dir lacks into stage's lfs/objects,
// each checked against its oid and size: from the remote's lfs/objects for a
// file:// URL, otherwise over ssh (sshCmd, as for git) with git-lfs-transfer.
func (s *Store) fetchLFS(ctx context.Context, dir, stage, rawURL, sshCmd string, want map[string]int64) (int, error) {
	var missing []string
	for oid, size := range want {
		if fi, err := os.Stat(lfsObjectPath(dir, oid)); err == nil && fi.Size() == size {
			continue
		}
		if s.lfsMaxSize >= 0 && size > s.lfsMaxSize {
			return 0, fmt.Errorf("%w: object %s is %d bytes, more than this store's limit of %d", ErrLFS, oid, size, s.lfsMaxSize)
		}
		missing = append(missing, oid)
	}
	if len(missing) == 0 {
		return 0, nil
	}
	sort.Strings(missing)
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, err
	}
	store := func(oid string, r io.Reader) error {
		return storeLFSObject(stage, oid, want[oid], r)
	}
	if u.Scheme == "file" {
		for _, oid := range missing {
			f, err := os.Open(lfsObjectPath(u.Path, oid))
			if err != nil {
				return 0, fmt.Errorf("%w: object %s is not in %s", ErrLFS, oid, rawURL)
			}
			err = store(oid, f)
			f.Close()
			if err != nil {
				return 0, err
			}
		}
		return len(missing), nil
	}
	if u.Scheme != "ssh" {
		return 0, fmt.Errorf("%w: cannot fetch objects over %s", ErrLFS, u.Scheme)
	}
	host := u.Hostname()
	if u.User != nil {
		host = u.User.Username() + "@" + host
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", sshCmd+` -p "$1" -- "$2" "$3"`, "sh", port, host, "git-lfs-transfer "+u.Path+" download")
	setGitProcAttr(cmd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrLFS, err)
	}
	c := &lfsFetcher{r: newPktReader(stdout), w: newPktWriter(stdin)}
	err = c.run(missing, want, store)
	stdin.Close()
	werr := cmd.Wait()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w (%s)", err, msg)
		}
		return 0, fmt.Errorf("%w from %s: %w", ErrLFS, rawURL, err)
	}
	if werr != nil {
		s.log.Warn("mesh: git-lfs-transfer session ended badly", "url", rawURL, "err", werr)
	}
	return len(missing), nil
}

// storeLFSObject writes an object from r into dir's lfs/objects through
// lfs/incoming, renamed into place only when its size and SHA-256 match.
func storeLFSObject(dir, oid string, size int64, r io.Reader) error {
	incoming := filepath.Join(dir, lfsDirName, lfsIncomingDir)
	if err := os.MkdirAll(incoming, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(incoming, oid[:16]+"-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, size+1))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != oid {
		return fmt.Errorf("%w: object %s arrived with %d bytes and a different hash", ErrLFS, oid, n)
	}
	dst := lfsObjectPath(dir, oid)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

// moveLFSObjects moves the objects under stage's lfs/objects into dir's (a
// rename each; one dir has already is left).
func moveLFSObjects(stage, dir string) error {
	from := filepath.Join(stage, lfsDirName, lfsObjectsDir)
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == from {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		oid := d.Name()
		if parseOID(oid) != nil {
			return nil
		}
		dst := lfsObjectPath(dir, oid)
		if _, err := os.Stat(dst); err == nil {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Rename(p, dst)
	})
}

// lfsFetcher is the client side of git-lfs-transfer, for downloads.
type lfsFetcher struct {
	r *pktReader
	w *pktWriter
}

func (c *lfsFetcher) run(oids []string, sizes map[string]int64, store func(oid string, r io.Reader) error) error {
	caps, err := c.lines()
	if err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	if !strings.Contains("\n"+strings.Join(caps, "\n")+"\n", "\nversion=1\n") {
		return fmt.Errorf("the remote does not speak version 1 (capabilities %q)", caps)
	}
	c.w.line("version 1")
	c.w.flushPkt()
	if err := c.w.send(); err != nil {
		return err
	}
	if st, _, msg, err := c.status(); err != nil || st != 200 {
		return fmt.Errorf("version 1: status %d %s %v", st, msg, err)
	}
	for start := 0; start < len(oids); start += 100 {
		batch := oids[start:min(start+100, len(oids))]
		c.w.line("batch")
		c.w.line("transfer=ssh")
		c.w.line("hash-algo=sha256")
		c.w.delimPkt()
		for _, oid := range batch {
			c.w.line(fmt.Sprintf("%s %d", oid, sizes[oid]))
		}
		c.w.flushPkt()
		if err := c.w.send(); err != nil {
			return err
		}
		st, _, body, err := c.status()
		if err != nil {
			return err
		}
		if st != 200 {
			return fmt.Errorf("batch: status %d: %s", st, body)
		}
		actions := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
			if f := strings.Fields(line); len(f) >= 3 {
				actions[f[0]] = f[2]
			}
		}
		for _, oid := range batch {
			if actions[oid] != "download" {
				return fmt.Errorf("object %s is not on the remote", oid)
			}
			if err := c.get(oid, store); err != nil {
				return err
			}
		}
	}
	c.w.line("quit")
	c.w.flushPkt()
	c.w.send()
	c.status()
	return nil
}

// get downloads one object into store.
func (c *lfsFetcher) get(oid string, store func(oid string, r io.Reader) error) error {
	c.w.line("get-object " + oid)
	c.w.flushPkt()
	if err := c.w.send(); err != nil {
		return err
	}
	kind, data, err := c.r.next()
	if err != nil {
		return err
	}
	if kind != pktData || !strings.HasPrefix(pktText(data), "status ") {
		return fmt.Errorf("get-object %s: no status", oid)
	}
	st, _ := strconv.Atoi(strings.TrimPrefix(pktText(data), "status "))
	for { // arguments, up to the delim-pkt
		kind, _, err := c.r.next()
		if err != nil {
			return err
		}
		if kind == pktDelim {
			break
		}
		if kind == pktFlush {
			return fmt.Errorf("get-object %s: status %d without data", oid, st)
		}
	}
	body := &pktDataReader{p: c.r}
	if st != 200 {
		msg, _ := io.ReadAll(io.LimitReader(body, 1024))
		io.Copy(io.Discard, body)
		return fmt.Errorf("get-object %s: status %d: %s", oid, st, msg)
	}
	err = store(oid, body)
	if _, derr := io.Copy(io.Discard, body); err == nil {
		err = derr
	}
	return err
}

// lines reads text packets up to a flush-pkt.
func (c *lfsFetcher) lines() ([]string, error) {
	var out []string
	for {
		kind, data, err := c.r.next()
		if err != nil {
			return nil, err
		}
		if kind == pktFlush {
			return out, nil
		}
		out = append(out, pktText(data))
	}
}

// status reads "status N", arguments and, after a delim-pkt, text lines, up to
// a flush-pkt.
func (c *lfsFetcher) status() (int, []string, string, error) {
	lines, err := c.linesWithDelim()
	if err != nil {
		return 0, nil, "", err
	}
	if len(lines.head) == 0 || !strings.HasPrefix(lines.head[0], "status ") {
		return 0, nil, "", errors.New("no status line")
	}
	st, err := strconv.Atoi(strings.TrimPrefix(lines.head[0], "status "))
	if err != nil {
		return 0, nil, "", fmt.Errorf("bad status %q", lines.head[0])
	}
	return st, lines.head[1:], strings.Join(lines.body, "\n"), nil
}

type pktLines struct{ head, body []string }

func (c *lfsFetcher) linesWithDelim() (pktLines, error) {
	var l pktLines
	delim := false
	for {
		kind, data, err := c.r.next()
		if err != nil {
			return l, err
		}
		switch kind {
		case pktFlush:
			return l, nil
		case pktDelim:
			delim = true
		default:
			if delim {
				l.body = append(l.body, pktText(data))
			} else {
				l.head = append(l.head, pktText(data))
			}
		}
	}
}
