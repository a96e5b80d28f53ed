package mesh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

// TestResponseSessionGitJoinsLate: in a session whose capability
// advertisement comes from the cache, a request that misses (an incremental
// fetch's negotiation) starts git then, and the client gets a correct fetch:
// git's own advertisement never reaches it. The next client behind by the same
// commits gets its ls-refs answer from the cache.
func TestResponseSessionGitJoinsLate(t *testing.T) {
	t.Parallel()
	s := openResponseStore(t)
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	u := repoURL("PROJ", "r")
	head := pushCommit(t, g, u, "one")
	cloneCheck(t, g, u, 2) // keeps this state's advertisement
	answersWritten(t, s, 3)

	// Two clients one commit behind fetch: both start with the cached
	// advertisement, the first lets git answer ls-refs (kept) and the
	// negotiation, the second has ls-refs from the cache.
	behind := func() string {
		dir, _ := cloneCheck(t, g, u, 2)
		g.Run(dir, "update-ref", "refs/heads/main", "refs/heads/main~1")
		g.Run(dir, "reflog", "expire", "--expire=now", "--all")
		g.Run(dir, "gc", "-q", "--prune=now")
		return dir
	}
	a, b := behind(), behind()
	before := s.PackCacheStats()
	for i, dir := range []string{a, b} {
		out, err := g.TryRun(dir, "-c", "protocol.version=2", "fetch", "-q", u, "+refs/heads/*:refs/heads/*")
		if err != nil {
			t.Fatalf("fetch %d: %v\n%s", i, err, out)
		}
		if out, err := g.TryRun(dir, "fsck", "--strict"); err != nil {
			t.Fatalf("fsck after fetch %d: %v\n%s", i, err, out)
		}
		if got := g.Refs(dir)["refs/heads/main"]; got != head {
			t.Fatalf("fetch %d: main at %s, want %s", i, got, head)
		}
	}
	st := s.PackCacheStats()
	if st.ListHits-before.ListHits < 1 {
		t.Fatalf("%+v (before %+v): want the second fetch's ls-refs answered from the cache", st, before)
	}
	if st.SessionsWithoutGit != before.SessionsWithoutGit {
		t.Fatalf("%+v (before %+v): both fetches negotiate, which needs git", st, before)
	}
}

// TestResponseSessionPipelined: a client that sends its commands without
// waiting for the capability advertisement (here all at once) gets the same
// bytes in every session, from git or from the cache: an advertisement still
// on its way is never kept as the answer to ls-refs.
func TestResponseSessionPipelined(t *testing.T) {
	t.Parallel()
	s := openResponseStore(t)
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	var in bytes.Buffer
	for _, l := range []string{"command=ls-refs\n", "agent=git/test\n", "", "symrefs\n", "peel\n", "ref-prefix refs/heads/\n"} {
		if l == "" {
			in.WriteString("0001")
			continue
		}
		fmt.Fprintf(&in, "%04x%s", len(l)+4, l)
	}
	in.WriteString("0000")
	req := gitfleet.GitRequest{Service: gitfleet.UploadPack, Repo: gitfleet.RepoName{Project: "PROJ", Slug: "r"}, Protocol: 2}
	var first []byte
	for i := range 4 {
		var out, stderr bytes.Buffer
		if err := s.ServeGit(ctxT(t), req, bytes.NewReader(in.Bytes()), &out, &stderr); err != nil {
			t.Fatalf("session %d: %v: %s", i, err, stderr.String())
		}
		if i == 0 {
			first = out.Bytes()
			if !bytes.Contains(first, []byte(" refs/heads/main")) {
				t.Fatalf("session 0 answered %q, want refs/heads/main listed", first)
			}
			continue
		}
		if !bytes.Equal(out.Bytes(), first) {
			t.Fatalf("session %d answered\n%q\nwant\n%q", i, out.Bytes(), first)
		}
	}
	// Session 0 keeps the advertisement (and the ls-refs answer unless it
	// came before the advertisement had passed); by session 2 both come
	// from the cache.
	if st := s.PackCacheStats(); st.SessionsWithoutGit < 2 {
		t.Fatalf("%+v: want sessions 2 and 3 answered without git", st)
	}
}

// TestResponseSessionSID: with transfer.advertiseSID the advertisement differs
// in every session and is never kept; clones still get fetch answers from the
// cache.
func TestResponseSessionSID(t *testing.T) {
	t.Parallel()
	s := openResponseStore(t)
	g := newGit(t, startGitServer(t, s))
	want := seed(t, g, s, "PROJ", "r")
	dir := filepath.Join(s.Root(), "PROJ", "r.git")
	testutil.NewGit(t).Run(dir, "config", "transfer.advertiseSID", "true")
	u := repoURL("PROJ", "r")
	for i := range 3 {
		_, got := cloneCheck(t, g, u, 2)
		sameRefs(t, got, want)
		if i == 0 {
			answersWritten(t, s, 2) // ls-refs and fetch, kept just after their last byte is sent
		}
	}
	st := s.PackCacheStats()
	if st.SessionsWithoutGit != 0 || st.ListHits != 0 || st.ResponseHits != 2 {
		t.Fatalf("%+v: want every session through git, and fetch answers from the cache", st)
	}
}

// warmSession returns a store whose PROJ/r has had one v2 clone (its
// advertisement, ls-refs and fetch answers kept), and the request that opens
// an upload-pack session there.
func warmSession(t *testing.T) (*mesh.Store, gitfleet.GitRequest) {
	t.Helper()
	s := openResponseStore(t)
	g := newGit(t, startGitServer(t, s))
	seed(t, g, s, "PROJ", "r")
	cloneCheck(t, g, repoURL("PROJ", "r"), 2)
	answersWritten(t, s, 3)
	return s, gitfleet.GitRequest{Service: gitfleet.UploadPack, Repo: gitfleet.RepoName{Project: "PROJ", Slug: "r"}, Protocol: 2}
}

// TestResponseSessionBadInput: input that is not pkt-line framing, after a
// cached capability advertisement, goes to git, which refuses it: the session
// fails as it does without the cache.
func TestResponseSessionBadInput(t *testing.T) {
	t.Parallel()
	s, req := warmSession(t)
	for _, in := range []string{"not a pkt-line\n", "0014command=ls-r"} {
		var out, stderr bytes.Buffer
		err := s.ServeGit(ctxT(t), req, bytes.NewReader([]byte(in)), &out, &stderr)
		if err == nil {
			t.Fatalf("input %q: the session succeeded; stdout %q", in, out.String())
		}
		if !bytes.HasPrefix(out.Bytes(), []byte("000eversion 2\n")) {
			t.Fatalf("input %q: stdout %q, want the advertisement first", in, out.String())
		}
	}
	if st := s.PackCacheStats(); st.SessionsWithoutGit != 0 {
		t.Fatalf("%+v: a bad session counted as answered without git", st)
	}
}

// TestResponseSessionCancel: a session answered from the cache that waits for
// the client's next command ends when its context does, also when the
// client's stream cannot be interrupted (a pipe), and writes nothing to the
// client after ServeGit has returned.
func TestResponseSessionCancel(t *testing.T) {
	t.Parallel()
	s, req := warmSession(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	var out testutil.LockedBuffer
	errc := make(chan error, 1)
	go func() { errc <- s.ServeGit(ctx, req, pr, &out, io.Discard) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasSuffix(out.String(), "0000") { // the advertisement, from the cache
		if time.Now().After(deadline) {
			t.Fatalf("no advertisement: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ServeGit after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeGit did not return after its context ended")
	}
	before := out.String()
	// The client's next command reaches a session that has ended.
	fmt.Fprintf(pw, "%04xcommand=ls-refs\n0000", len("command=ls-refs\n")+4)
	time.Sleep(100 * time.Millisecond)
	if after := out.String(); after != before {
		t.Fatalf("written to the client after ServeGit returned: %q", after[len(before):])
	}
}
