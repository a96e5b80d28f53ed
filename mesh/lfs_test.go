package mesh_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
)

// lfsClient speaks the client side of git-lfs-transfer to a Repos, the way
// git-lfs does, for the cases git-lfs itself never sends.
type lfsClient struct {
	t    *testing.T
	w    *io.PipeWriter
	r    *bufio.Reader
	done chan error
}

func dialLFS(t *testing.T, r mesh.Repos, op, user string) *lfsClient {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &lfsClient{t: t, w: inW, r: bufio.NewReader(outR), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(ctxT(t))
	req := gitfleet.GitRequest{Service: gitfleet.LFSTransfer, Repo: gitfleet.RepoName{Project: "PROJ", Slug: "lfs"}, LFSOperation: op, User: user}
	go func() {
		err := r.ServeGit(ctx, req, inR, outW, io.Discard)
		outW.CloseWithError(io.EOF)
		c.done <- err
	}()
	t.Cleanup(func() {
		inW.Close()
		cancel()
		<-c.done
	})
	if caps := c.readUntil(true); strings.Join(caps, ",") != "version=1,locking" {
		t.Fatalf("capabilities %q", caps)
	}
	c.send("version 1", nil, nil)
	if st, _, _ := c.response(); st != 200 {
		t.Fatalf("version 1: status %d", st)
	}
	return c
}

func (c *lfsClient) pkt(s string) { fmt.Fprintf(c.w, "%04x%s", len(s)+4, s) }

// send writes a request: command, arguments, and, when body is not nil, a
// delim-pkt and the body in data packets; then a flush-pkt.
func (c *lfsClient) send(command string, args []string, body []byte) {
	c.pkt(command + "\n")
	for _, a := range args {
		c.pkt(a + "\n")
	}
	if body != nil {
		io.WriteString(c.w, "0001")
		for len(body) > 0 {
			n := min(len(body), 65516)
			c.pkt(string(body[:n]))
			body = body[n:]
		}
	}
	io.WriteString(c.w, "0000")
}

// sendLines writes a request whose body is text lines, one packet each.
func (c *lfsClient) sendLines(command string, args, lines []string) {
	c.pkt(command + "\n")
	for _, a := range args {
		c.pkt(a + "\n")
	}
	io.WriteString(c.w, "0001")
	for _, l := range lines {
		c.pkt(l + "\n")
	}
	io.WriteString(c.w, "0000")
}

// readPkt returns a packet: "" with flush or delim set for the special ones.
func (c *lfsClient) readPkt() (data string, flush, delim bool) {
	c.t.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		c.t.Fatalf("reading a packet: %v", err)
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil {
		c.t.Fatalf("bad packet header %q", hdr[:])
	}
	switch n {
	case 0:
		return "", true, false
	case 1:
		return "", false, true
	}
	b := make([]byte, n-4)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatal(err)
	}
	return string(b), false, false
}

// readUntil reads text packets up to a flush-pkt (or a delim-pkt unless
// flushOnly).
func (c *lfsClient) readUntil(flushOnly bool) []string {
	var out []string
	for {
		d, flush, delim := c.readPkt()
		if flush || (delim && !flushOnly) {
			return out
		}
		out = append(out, strings.TrimSuffix(d, "\n"))
	}
}

// response reads a status, its arguments and what follows a delim-pkt.
func (c *lfsClient) response() (status int, args []string, body string) {
	c.t.Helper()
	first, _, _ := c.readPkt()
	st, ok := strings.CutPrefix(strings.TrimSuffix(first, "\n"), "status ")
	if !ok {
		c.t.Fatalf("expected a status, got %q", first)
	}
	status, _ = strconv.Atoi(st)
	for {
		d, flush, delim := c.readPkt()
		if flush {
			return status, args, body
		}
		if delim {
			break
		}
		args = append(args, strings.TrimSuffix(d, "\n"))
	}
	var b strings.Builder
	for {
		d, flush, _ := c.readPkt()
		if flush {
			return status, args, b.String()
		}
		b.WriteString(d)
	}
}

func oidOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestLFSTransferRefusals: what git-lfs would never send is refused with a
// status and a message, and leaves nothing behind: data whose SHA-256 is not
// its oid, more or less data than its declared size, an object over the size
// limit (refused in the batch, before any data), a malformed oid, an upload or
// a lock in a download session, an unknown command; a missing object is 404.
// Locks: a second lock on a path is 409 naming the holder, another user cannot
// release it, and listing pages through next-cursor. In process and through the
// sidecar.
func TestLFSTransferRefusals(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s, err := mesh.OpenStore(ctxT(t), mesh.StoreConfig{Root: root, LFSMaxObjectSize: 1 << 20, MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Create(ctxT(t), "PROJ", "lfs"); err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(root, "PROJ", "lfs.git")
	backends := map[string]mesh.Repos{"store": s}
	if c := sidecarClient(t, s); c != nil {
		backends["sidecar"] = c
	}
	for name, r := range backends {
		t.Run(name, func(t *testing.T) {
			up := dialLFS(t, r, gitfleet.LFSUpload, "alice")
			good := []byte("the content of an object, " + name)
			oid := oidOf(good)
			size := strconv.Itoa(len(good))

			up.sendLines("batch", []string{"transfer=ssh", "hash-algo=sha256"}, []string{oid + " " + size, fmt.Sprintf("%s %d", oidOf([]byte("big")), 2<<20)})
			if st, _, msg := up.response(); st != 413 || !strings.Contains(msg, "limit") {
				t.Fatalf("batch with an object over the limit: %d %q", st, msg)
			}
			up.sendLines("batch", []string{"hash-algo=sha256"}, []string{oid + " " + size})
			if st, args, body := up.response(); st != 200 || body != oid+" "+size+" upload\n" || strings.Join(args, ",") != "hash-algo=sha256" {
				t.Fatalf("batch: %d %q %q", st, args, body)
			}
			cases := []struct {
				name   string
				oid    string
				size   string
				data   []byte
				status int
			}{
				{"wrong data", oid, size, []byte(strings.ToUpper(string(good))), 400},
				{"short", oid, strconv.Itoa(len(good) + 1), good, 400},
				{"long", oid, strconv.Itoa(len(good) - 1), good, 400},
				{"over the limit", oid, strconv.Itoa(2 << 20), good, 413},
				{"bad oid", "xyz", size, good, 400},
				{"no size", oid, "", good, 400},
			}
			for _, c := range cases {
				up.send("put-object "+c.oid, []string{"size=" + c.size}, c.data)
				if st, _, msg := up.response(); st != c.status || msg == "" {
					t.Fatalf("put-object, %s: %d %q, want %d", c.name, st, msg, c.status)
				}
				up.send("verify-object "+oid, []string{"size=" + size}, nil)
				if st, _, _ := up.response(); st != 404 {
					t.Fatalf("after put-object, %s: verify-object %d, want 404", c.name, st)
				}
			}
			if left, _ := os.ReadDir(filepath.Join(repoDir, "lfs", "incoming")); len(left) != 0 {
				t.Fatalf("debris in lfs/incoming: %v", left)
			}
			up.send("put-object "+oid, []string{"size=" + size}, good)
			if st, _, _ := up.response(); st != 200 {
				t.Fatalf("put-object: %d", st)
			}
			up.send("verify-object "+oid, []string{"size=" + size}, nil)
			if st, _, _ := up.response(); st != 200 {
				t.Fatalf("verify-object: %d", st)
			}
			up.send("frobnicate", nil, nil)
			if st, _, _ := up.response(); st != 400 {
				t.Fatalf("unknown command: %d", st)
			}

			down := dialLFS(t, r, gitfleet.LFSDownload, "bob")
			down.send("get-object "+oid, nil, nil)
			if st, args, body := down.response(); st != 200 || body != string(good) || strings.Join(args, ",") != "size="+size {
				t.Fatalf("get-object: %d %q %d bytes", st, args, len(body))
			}
			down.send("get-object "+oidOf([]byte("missing")), nil, nil)
			if st, _, _ := down.response(); st != 404 {
				t.Fatalf("get-object of a missing object: %d", st)
			}
			down.send("put-object "+oid, []string{"size=" + size}, good)
			if st, _, _ := down.response(); st != 403 {
				t.Fatalf("put-object in a download session: %d", st)
			}
			down.send("lock", []string{"path=x.bin"}, nil)
			if st, _, _ := down.response(); st != 403 {
				t.Fatalf("lock in a download session: %d", st)
			}

			// Locks.
			path := "assets/" + name + ".bin"
			up.send("lock", []string{"path=" + path, "refname=refs/heads/main"}, nil)
			st, args, _ := up.response()
			if st != 201 {
				t.Fatalf("lock: %d", st)
			}
			id := strings.TrimPrefix(args[0], "id=")
			up2 := dialLFS(t, r, gitfleet.LFSUpload, "carol")
			up2.send("lock", []string{"path=" + path}, nil)
			if st, args, msg := up2.response(); st != 409 || !strings.Contains(msg, "alice") || args[0] != "id="+id {
				t.Fatalf("second lock: %d %q %q", st, args, msg)
			}
			up2.send("unlock "+id, nil, nil)
			if st, _, msg := up2.response(); st != 403 || !strings.Contains(msg, "alice") {
				t.Fatalf("unlock by another user: %d %q", st, msg)
			}
			for i := range 3 {
				up2.send("lock", []string{fmt.Sprintf("path=%s.%d", path, i)}, nil)
				if st, _, _ := up2.response(); st != 201 {
					t.Fatalf("lock %d: %d", i, st)
				}
			}
			var seen []string
			cursor := ""
			for pages := 0; ; pages++ {
				args := []string{"limit=2"}
				if cursor != "" {
					args = append(args, "cursor="+cursor)
				}
				down.send("list-lock", args, nil)
				st, rargs, body := down.response()
				if st != 200 || pages > 5 {
					t.Fatalf("list-lock: %d after %d pages", st, pages)
				}
				for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
					if p, ok := strings.CutPrefix(line, "path "); ok && strings.HasPrefix(p[strings.IndexByte(p, ' ')+1:], path) {
						seen = append(seen, p[strings.IndexByte(p, ' ')+1:])
					}
				}
				cursor = ""
				for _, a := range rargs {
					cursor = strings.TrimPrefix(a, "next-cursor=")
				}
				if cursor == "" {
					break
				}
			}
			if len(seen) != 4 {
				t.Fatalf("listed locks %q, want 4", seen)
			}
			up.send("unlock "+id, nil, nil)
			if st, args, _ := up.response(); st != 200 || len(args) != 4 {
				t.Fatalf("unlock by its owner: %d %q", st, args)
			}
			up.send("quit", nil, nil)
			if st, _, _ := up.response(); st != 200 {
				t.Fatalf("quit: %d", st)
			}
		})
	}
}

// lfsUpstream makes a bare repository at a path with one commit holding LFS
// pointers to objects, whose contents it keeps in its lfs/objects as the store
// does; missing names an object whose content it leaves out.
func lfsUpstream(t *testing.T, objects map[string][]byte, missing string) (dir string, head string) {
	t.Helper()
	g := newGit(t, "")
	work := filepath.Join(t.TempDir(), "w")
	g.Run("", "init", "-q", work)
	for name, data := range objects {
		oid := oidOf(data)
		pointer := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", oid, len(data))
		if err := os.WriteFile(filepath.Join(work, name), []byte(pointer), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g.Run(work, "add", ".")
	g.Run(work, "commit", "-q", "-m", "pointers")
	dir = filepath.Join(t.TempDir(), "up.git")
	g.Run("", "clone", "-q", "--bare", work, dir)
	for name, data := range objects {
		if name == missing {
			continue
		}
		oid := oidOf(data)
		p := filepath.Join(dir, "lfs", "objects", oid[:2], oid[2:4], oid)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, strings.TrimSpace(g.Run(dir, "rev-parse", "HEAD"))
}

// TestFetchCarriesLFS: a fetch brings the LFS objects its new commits point to,
// checked, before the refs change; an object the remote lacks fails the fetch
// with ErrLFS and changes no ref; SkipLFS leaves them; LFSAll repairs.
func TestFetchCarriesLFS(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, r mesh.Repos, root string) {
		ctx := ctxT(t)
		objects := map[string][]byte{"a.bin": []byte("first object"), "b.bin": []byte("second object")}
		up, head := lfsUpstream(t, objects, "")
		res, err := r.Fetch(ctx, "PROJ", "m", mesh.FetchOptions{URL: "file://" + up})
		if err != nil {
			t.Fatal(err)
		}
		if res.LFSObjects != 2 {
			t.Fatalf("LFSObjects = %d, want 2", res.LFSObjects)
		}
		for _, data := range objects {
			oid := oidOf(data)
			got, err := os.ReadFile(filepath.Join(root, "PROJ", "m.git", "lfs", "objects", oid[:2], oid[2:4], oid))
			if err != nil || string(got) != string(data) {
				t.Fatalf("object %s: %q, %v", oid, got, err)
			}
		}
		if refs := refsOf(t, r, "PROJ", "m"); refs["refs/heads/main"] != head && refs["refs/heads/master"] != head {
			t.Fatalf("refs %v, want HEAD %s", refs, head)
		}

		// An upstream missing an object: the fetch fails and no ref moves.
		up2, _ := lfsUpstream(t, map[string][]byte{"c.bin": []byte("third object")}, "c.bin")
		before := refsOf(t, r, "PROJ", "m")
		if _, err := r.Fetch(ctx, "PROJ", "m", mesh.FetchOptions{URL: "file://" + up2}); !errors.Is(err, mesh.ErrLFS) {
			t.Fatalf("fetch with a missing object: %v, want ErrLFS", err)
		}
		sameRefs(t, refsOf(t, r, "PROJ", "m"), before)
		if _, err := r.Fetch(ctx, "PROJ", "n", mesh.FetchOptions{URL: "file://" + up2}); !errors.Is(err, mesh.ErrLFS) {
			t.Fatalf("first fetch with a missing object: %v, want ErrLFS", err)
		}
		if ok, _ := r.Exists(ctx, "PROJ", "n"); ok {
			t.Fatal("a failed first fetch left a repository")
		}
		// SkipLFS fetches the refs alone.
		if res, err := r.Fetch(ctx, "PROJ", "n", mesh.FetchOptions{URL: "file://" + up2, SkipLFS: true}); err != nil || res.LFSObjects != 0 {
			t.Fatalf("fetch with SkipLFS: %+v, %v", res, err)
		}
		// LFSAll finds what is missing though no commit is new.
		oid := oidOf(objects["a.bin"])
		if err := os.Remove(filepath.Join(root, "PROJ", "m.git", "lfs", "objects", oid[:2], oid[2:4], oid)); err != nil {
			t.Fatal(err)
		}
		if res, err := r.Fetch(ctx, "PROJ", "m", mesh.FetchOptions{URL: "file://" + up}); err != nil || res.LFSObjects != 0 {
			t.Fatalf("fetch with nothing new: %+v, %v", res, err)
		}
		if res, err := r.Fetch(ctx, "PROJ", "m", mesh.FetchOptions{URL: "file://" + up, LFSAll: true}); err != nil || res.LFSObjects != 1 {
			t.Fatalf("fetch with LFSAll: %+v, %v", res, err)
		}
	})
}

// TestLFSGarbageCollection: maintenance removes the LFS objects no ref reaches
// once they are older than the grace period, and keeps those a ref reaches,
// those within the grace period, one an upload session has just asked about
// (as git-lfs does before the push that references it), and all of them while
// a push runs in the repository.
func TestLFSGarbageCollection(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s, err := mesh.OpenStore(ctxT(t), mesh.StoreConfig{Root: root, LFSGracePeriod: time.Hour, MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := ctxT(t)
	if err := s.Create(ctx, "PROJ", "lfs"); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(root, "PROJ", "lfs.git")
	put := func(data []byte, age time.Duration) string {
		oid := oidOf(data)
		p := filepath.Join(repo, "lfs", "objects", oid[:2], oid[2:4], oid)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		then := time.Now().Add(-age)
		os.Chtimes(p, then, then)
		return p
	}
	referenced := []byte("referenced by main")
	g := newGit(t, startGitServer(t, s))
	work, _ := pushFixture(t, g)
	pointer := fmt.Sprintf("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n", oidOf(referenced), len(referenced))
	c := g.CommitFile(work, "a.bin", pointer, "pointer")
	g.Run(work, "push", "-q", repoURL("PROJ", "lfs"), c+":refs/heads/main")

	kept := put(referenced, 2*time.Hour)
	young := put([]byte("new, not yet referenced"), time.Minute)
	orphan := put([]byte("orphaned"), 2*time.Hour)
	asked := put([]byte("about to be referenced"), 2*time.Hour)
	up := dialLFS(t, s, gitfleet.LFSUpload, "alice")
	up.sendLines("batch", []string{"hash-algo=sha256"}, []string{oidOf([]byte("about to be referenced")) + " 22"})
	if st, _, body := up.response(); st != 200 || !strings.Contains(body, " noop") {
		t.Fatalf("batch: %d %q", st, body)
	}

	// A push in progress: nothing is removed.
	stdinR, stdinW := io.Pipe()
	pushDone := make(chan error, 1)
	go func() {
		pushDone <- s.ServeGit(ctx, request(gitfleet.ReceivePack, "PROJ/lfs", nil), stdinR, io.Discard, io.Discard)
	}()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if res, err := s.Maintain(ctx, "PROJ", "lfs", false); err != nil || res.LFSRemoved != 0 {
			t.Fatalf("maintenance during a push: %+v, %v", res, err)
		}
		if _, err := os.Stat(orphan); err != nil {
			t.Fatalf("the orphan went during a push: %v", err)
		}
		if time.Now().After(deadline) || mesh.PushesRunning(s, "PROJ", "lfs") {
			break
		}
	}
	if !mesh.PushesRunning(s, "PROJ", "lfs") {
		t.Fatal("the push never started")
	}
	stdinW.Close()
	<-pushDone

	res, err := s.Maintain(ctx, "PROJ", "lfs", false)
	if err != nil || res.LFSRemoved != 1 {
		t.Fatalf("maintenance: %+v, %v; want one object removed", res, err)
	}
	if _, err := os.Stat(orphan); err == nil {
		t.Fatal("the orphan was kept")
	}
	for _, p := range []string{kept, young, asked} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s was removed: %v", p, err)
		}
	}
}

// TestLFSDiskFull: an upload whose writes fail as on a full disk is refused
// with 507 and a message saying nothing was stored; nothing is left behind,
// and the next upload, with space again, succeeds. (Not parallel: it changes
// how the package writes uploads.)
func TestLFSDiskFull(t *testing.T) {
	root := t.TempDir()
	s, err := mesh.OpenStore(ctxT(t), mesh.StoreConfig{Root: root, MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Create(ctxT(t), "PROJ", "lfs"); err != nil {
		t.Fatal(err)
	}
	up := dialLFS(t, s, gitfleet.LFSUpload, "alice")
	data := []byte("an object for a full disk")
	oid, size := oidOf(data), strconv.Itoa(len(data))
	restore := mesh.FailLFSWrites(syscall.ENOSPC)
	up.send("put-object "+oid, []string{"size=" + size}, data)
	st, _, msg := up.response()
	restore()
	if st != 507 || !strings.Contains(msg, "full") || !strings.Contains(msg, "nothing was stored") {
		t.Fatalf("put-object on a full disk: %d %q", st, msg)
	}
	if left, _ := os.ReadDir(filepath.Join(root, "PROJ", "lfs.git", "lfs", "incoming")); len(left) != 0 {
		t.Fatalf("debris in lfs/incoming: %v", left)
	}
	up.send("verify-object "+oid, []string{"size=" + size}, nil)
	if st, _, _ := up.response(); st != 404 {
		t.Fatalf("verify-object after a failed upload: %d", st)
	}
	up.send("put-object "+oid, []string{"size=" + size}, data)
	if st, _, _ := up.response(); st != 200 {
		t.Fatalf("put-object with space again: %d", st)
	}
}
