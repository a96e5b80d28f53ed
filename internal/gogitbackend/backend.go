package gogitbackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/gitfleet/gitfleet"
)

// ErrUnsupported is wrapped by the error ServeGit returns for a service it does
// not serve (git-upload-archive).
var ErrUnsupported = errors.New("gogitbackend: service not supported")

// ExitError is the error ServeGit returns when a service fails: the exit status
// a git process would have ended with, and why.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d: %v", e.Code, e.Err) }

// Unwrap returns the cause.
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode returns the exit status, as sshserve reports it to the client.
func (e *ExitError) ExitCode() int { return e.Code }

// Backend serves git-upload-pack and git-receive-pack from the bare
// repositories under Root with go-git. The zero value is not usable: Root must
// be set. A Backend is safe for concurrent use.
type Backend struct {
	// Root is the directory holding the repositories, as Root/PROJECT/slug.git.
	// It is created by the first Create.
	Root string
	// Logger receives a line per failed session; nil discards.
	Logger *slog.Logger

	mu    sync.Mutex
	locks map[gitfleet.RepoName]*sync.Mutex // serialises receive-packs per repository
}

// Dir returns the directory of a repository.
func (b *Backend) Dir(repo gitfleet.RepoName) string {
	return filepath.Join(b.Root, repo.Project, repo.Slug+".git")
}

// exists reports whether the repository is there (a bare repository's HEAD).
func (b *Backend) exists(repo gitfleet.RepoName) bool {
	st, err := os.Stat(filepath.Join(b.Dir(repo), "HEAD"))
	return err == nil && st.Mode().IsRegular()
}

// lock returns the mutex that serialises pushes to repo.
func (b *Backend) lock(repo gitfleet.RepoName) *sync.Mutex {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.locks == nil {
		b.locks = map[gitfleet.RepoName]*sync.Mutex{}
	}
	m := b.locks[repo]
	if m == nil {
		m = &sync.Mutex{}
		b.locks[repo] = m
	}
	return m
}

// storage opens a repository's object and ref storage. The storage hides
// go-git's PackfileWriter, so a received pack goes through the parser that
// resolves a thin pack's bases from the repository and stops at the pack's
// trailer (the PackfileWriter path reads until the client closes its stream,
// which git does not do before it has the report).
func (b *Backend) storage(repo gitfleet.RepoName) storer.Storer {
	fs := filesystem.NewStorage(osfs.New(b.Dir(repo)), cache.NewObjectLRUDefault())
	return struct{ storer.Storer }{fs}
}

// loader hands go-git's server the storage of the repository a session is for.
type loader struct{ st storer.Storer }

func (l loader) Load(*transport.Endpoint) (storer.Storer, error) { return l.st, nil }

// plainReader hides every method of a stream but Read, so that go-git's request
// decoder cannot close the session's stdin.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// ServeGit runs req.Service on req.Repo with go-git, wired to the session's
// streams; see the package documentation for what is served.
func (b *Backend) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !b.exists(req.Repo) {
		return fmt.Errorf("gogitbackend: %s: %w", req.Repo, gitfleet.ErrNotFound)
	}
	in := plainReader{stdin}
	var err error
	switch req.Service {
	case gitfleet.UploadPack:
		err = b.uploadPack(ctx, req, in, stdout)
	case gitfleet.ReceivePack:
		err = b.receivePack(ctx, req, in, stdout)
	default:
		err = fmt.Errorf("%w: %s is not served by the go-git test backend", ErrUnsupported, req.Service)
	}
	if err == nil {
		return nil
	}
	fmt.Fprintf(stderr, "fatal: %v\n", err)
	if b.Logger != nil {
		b.Logger.Warn("git session failed", "service", req.Service, "repo", req.Repo.String(), "err", err)
	}
	return &ExitError{Code: 128, Err: err}
}

// advertise writes the version line a v1 client asked for (v2 is answered as
// v0) and the ref advertisement, with annotated tags peeled.
func advertise(st storer.Storer, ar *packp.AdvRefs, protocol int, w io.Writer) error {
	for name, id := range ar.References {
		if !plumbing.ReferenceName(name).IsTag() {
			continue
		}
		if obj, err := st.EncodedObject(plumbing.TagObject, id); err == nil {
			if target, ok := peel(st, obj); ok {
				ar.Peeled[name] = target
			}
		}
	}
	if protocol == 1 {
		if err := pktline.NewEncoder(w).EncodeString("version 1\n"); err != nil {
			return err
		}
	}
	return ar.Encode(w)
}

// peel follows a chain of annotated tags to the object it ends at.
func peel(st storer.Storer, obj plumbing.EncodedObject) (plumbing.Hash, bool) {
	for range 16 {
		r, err := obj.Reader()
		if err != nil {
			return plumbing.ZeroHash, false
		}
		var head [7 + 40]byte // "object <id>"
		_, err = io.ReadFull(r, head[:])
		r.Close()
		if err != nil || !bytes.HasPrefix(head[:], []byte("object ")) {
			return plumbing.ZeroHash, false
		}
		target := plumbing.NewHash(string(head[7:]))
		next, err := st.EncodedObject(plumbing.AnyObject, target)
		if err != nil {
			return plumbing.ZeroHash, false
		}
		if next.Type() != plumbing.TagObject {
			return target, true
		}
		obj = next
	}
	return plumbing.ZeroHash, false
}

// firstLine reads the client's first pkt-line. ok is false when the client sent
// only a flush or closed the stream, which ends the service without error (as
// ls-remote and an up-to-date push do); otherwise the line is returned encoded
// again, to be read before the rest of the stream.
func firstLine(in io.Reader) (line []byte, ok bool, err error) {
	sc := pktline.NewScanner(in)
	if !sc.Scan() {
		if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, false, fmt.Errorf("reading request: %w", err)
		}
		return nil, false, nil
	}
	if len(sc.Bytes()) == 0 {
		return nil, false, nil
	}
	var buf bytes.Buffer
	if err := pktline.NewEncoder(&buf).Encode(sc.Bytes()); err != nil {
		return nil, false, err
	}
	return buf.Bytes(), true, nil
}
