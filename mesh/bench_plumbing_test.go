package mesh

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/gitfleet/gitfleet/internal/gitexec"
	"github.com/gitfleet/gitfleet/internal/testutil"
)

// The benchmarks in this file measure the store's hand-written Git plumbing against
// go-git's equivalents on the same inputs, so that the choice recorded in the
// package documentation ("Plumbing: hand-written or go-git") can be re-measured:
//
//	go test -run '^$' -bench 'Plumbing' -benchmem -count 5 ./mesh/ | tee /tmp/plumbing.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /impl /tmp/plumbing.txt

// benchRefCount is the number of refs of the benchmark repositories.
const benchRefCount = 100_000

// refsFixture is a bare repository with benchRefCount refs that all point at
// real objects (so that upload-pack advertises them), and the refs it holds.
type refsFixture struct {
	dir  string
	refs map[string]string
}

// buildRefsFixture creates a repository of 100 commits and 100 annotated tags
// under parent and gives it benchRefCount refs written directly: 70% branches
// spread over 100 directories, 30% tags pointing at the annotated tag objects
// (so packed-refs carries peeled lines and the advertisement "^{}" lines).
// layout "packed" writes all but 1,000 of them to packed-refs and 2,000 as loose
// files, 1,000 of which override a packed ref with another id, as a repository
// looks between two pack-refs runs; "loose" writes every ref as a loose file.
func buildRefsFixture(b *testing.B, parent, layout string) refsFixture {
	b.Helper()
	testutil.Require(b, "git")
	ctx := context.Background()
	dir := filepath.Join(parent, layout+".git")
	if err := testutil.BuildRepo(ctx, dir, testutil.RepoSpec{Commits: 100, FilesPerCommit: 1, FileSize: 64, Dirs: 1, Tags: 100, Seed: 19}); err != nil {
		b.Fatal(err)
	}
	out, err := gitexec.Run(ctx, dir, nil, "rev-list", "refs/heads/main")
	if err != nil {
		b.Fatal(err)
	}
	commits := strings.Fields(string(out))
	out, err = gitexec.Run(ctx, dir, nil, "for-each-ref", "--format=%(objectname) %(*objectname)", "refs/tags")
	if err != nil {
		b.Fatal(err)
	}
	var tags, peeled []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		id, p, _ := strings.Cut(line, " ")
		tags, peeled = append(tags, id), append(peeled, p)
	}
	if len(commits) != 100 || len(tags) != 100 {
		b.Fatalf("fixture has %d commits and %d tags", len(commits), len(tags))
	}
	// Start from no refs at all.
	if err := os.RemoveAll(filepath.Join(dir, "refs")); err != nil {
		b.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "packed-refs"))
	for _, d := range []string{"refs/heads", "refs/tags"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}

	type ref struct{ name, id, peeled string }
	all := make([]ref, 0, benchRefCount)
	all = append(all, ref{"refs/heads/main", commits[0], ""})
	nTags := benchRefCount * 3 / 10
	for i := 0; len(all) < benchRefCount-nTags; i++ {
		all = append(all, ref{fmt.Sprintf("refs/heads/team-%02d/topic-%05d", i%100, i), commits[i%len(commits)], ""})
	}
	for i := 0; len(all) < benchRefCount; i++ {
		all = append(all, ref{fmt.Sprintf("refs/tags/v%05d", i), tags[i%len(tags)], peeled[i%len(tags)]})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].name < all[j].name })

	f := refsFixture{dir: dir, refs: make(map[string]string, len(all))}
	writeLoose := func(name, id string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		f.refs[name] = id
	}
	switch layout {
	case "loose":
		for _, r := range all {
			writeLoose(r.name, r.id)
		}
	case "packed":
		var pr bytes.Buffer
		pr.WriteString("# pack-refs with: peeled fully-peeled sorted \n")
		for i, r := range all {
			if i%100 == 50 {
				continue // 1,000 refs only loose
			}
			pr.WriteString(r.id + " " + r.name + "\n")
			if r.peeled != "" {
				pr.WriteString("^" + r.peeled + "\n")
			}
			f.refs[r.name] = r.id
		}
		if err := os.WriteFile(filepath.Join(dir, "packed-refs"), pr.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		for i, r := range all {
			switch i % 100 {
			case 50:
				writeLoose(r.name, r.id)
			case 51: // a branch moved since refs were last packed
				if r.peeled == "" {
					writeLoose(r.name, commits[(i+1)%len(commits)])
				} else {
					writeLoose(r.name, r.id)
				}
			}
		}
	default:
		b.Fatalf("unknown layout %q", layout)
	}
	if len(f.refs) != benchRefCount {
		b.Fatalf("fixture has %d refs, want %d", len(f.refs), benchRefCount)
	}
	return f
}

// goGitReadRefs is readRefs written with go-git's filesystem storage
// (ReferenceStorage.IterReferences over loose refs, then packed-refs), filtered
// to what readRefs returns: no HEAD, no symbolic refs, no lock files.
func goGitReadRefs(dir string) (map[string]string, error) {
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault())
	defer st.Close()
	iter, err := st.IterReferences()
	if err != nil {
		return nil, err
	}
	refs := map[string]string{}
	err = iter.ForEach(func(r *plumbing.Reference) error {
		name := r.Name().String()
		if r.Type() != plumbing.HashReference || !strings.HasPrefix(name, "refs/") || strings.HasSuffix(name, ".lock") {
			return nil
		}
		refs[name] = r.Hash().String()
		return nil
	})
	return refs, err
}

// BenchmarkPlumbingRefs compares Refs' reader (readRefs) with go-git's reference
// storage on 100,000 refs, mostly packed ("packed") and all loose ("loose"), and
// the same followed by HashRefs, which is what RefsHash adds (the lock and the
// name checks around both are the same either way and left out).
func BenchmarkPlumbingRefs(b *testing.B) {
	parent := b.TempDir()
	for _, layout := range []string{"packed", "loose"} {
		fx := buildRefsFixture(b, parent, layout)
		want := HashRefs(fx.refs)
		impls := []struct {
			name string
			read func(string) (map[string]string, error)
		}{
			{"handwritten", readRefs},
			{"gogit", goGitReadRefs},
		}
		for _, impl := range impls {
			got, err := impl.read(fx.dir)
			if err != nil {
				b.Fatal(err)
			}
			if !maps.Equal(got, fx.refs) {
				b.Fatalf("%s on %s: %d refs differ from the %d written", impl.name, layout, len(got), len(fx.refs))
			}
			b.Run("op=Refs/layout="+layout+"/impl="+impl.name, func(b *testing.B) {
				for b.Loop() {
					if _, err := impl.read(fx.dir); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("op=RefsHash/layout="+layout+"/impl="+impl.name, func(b *testing.B) {
				for b.Loop() {
					refs, err := impl.read(fx.dir)
					if err != nil {
						b.Fatal(err)
					}
					if HashRefs(refs) != want {
						b.Fatal("hash differs")
					}
				}
			})
		}
	}
}

// advertisement captures what git upload-pack writes before it reads from the
// client on the 100,000-ref repository: for protocol v0 the ref advertisement
// (`git upload-pack --advertise-refs`), for v2 the capability advertisement
// followed by the response to an ls-refs command asking for peeled tags, as a
// clone's first exchange.
func advertisement(b *testing.B, dir string, version int) []byte {
	b.Helper()
	ctx := context.Background()
	if version == 0 {
		out, err := gitexec.Run(ctx, "", nil, "upload-pack", "--advertise-refs", dir)
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	env := []string{"GIT_PROTOCOL=version=2"}
	caps, err := gitexec.RunEnv(ctx, "", env, nil, "upload-pack", "--advertise-refs", dir)
	if err != nil {
		b.Fatal(err)
	}
	var req bytes.Buffer
	enc := pktline.NewEncoder(&req)
	if err := enc.EncodeString("command=ls-refs\n", "agent=git/2.39\n"); err != nil {
		b.Fatal(err)
	}
	req.WriteString("0001")
	if err := enc.EncodeString("peel\n", "symrefs\n", "ref-prefix HEAD\n", "ref-prefix refs/\n"); err != nil {
		b.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		b.Fatal(err)
	}
	resp, err := gitexec.RunEnv(ctx, "", env, &req, "upload-pack", "--stateless-rpc", dir)
	if err != nil {
		b.Fatal(err)
	}
	return append(caps, resp...)
}

// pipeChunk is how much of git's output one read from its pipe returns at most.
const pipeChunk = 64 << 10

// chunkReader hands out its data in reads of at most pipeChunk bytes, as a pipe
// from git does.
type chunkReader struct{ data []byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), pipeChunk)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// forwardHandwritten is what ServeGit does with upload-pack's output: copy it
// through an advWriter, which follows the framing, holds the advertisement while
// the lock is held and writes it on when it ends. It returns the length of the
// advertisement.
func forwardHandwritten(in []byte, w io.Writer) (int, error) {
	released := false
	aw := &advWriter{w: w}
	aw.hold(func() { released = true })
	if _, err := io.CopyBuffer(aw, &chunkReader{in}, make([]byte, pipeChunk)); err != nil {
		return 0, err
	}
	if !released {
		return 0, fmt.Errorf("advertisement did not end")
	}
	return len(in), nil
}

// forwardGoGit does the same with go-git's pkt-line Scanner: read pkt-lines from
// git's output (through a bufio.Reader, as one would over a pipe) while keeping
// the bytes read, until the flush-pkt that ends the advertisement (the second for
// v2), then write them on and copy the rest.
func forwardGoGit(in []byte, w io.Writer, flushes int) (int, error) {
	var held bytes.Buffer
	sc := pktline.NewScanner(io.TeeReader(bufio.NewReaderSize(&chunkReader{in}, pipeChunk), &held))
	for seen := 0; seen < flushes; {
		if !sc.Scan() {
			return 0, fmt.Errorf("advertisement did not end: %v", sc.Err())
		}
		if len(sc.Bytes()) == 0 {
			seen++
		}
	}
	n := held.Len()
	if _, err := w.Write(held.Bytes()); err != nil {
		return 0, err
	}
	return n, nil
}

// BenchmarkPlumbingAdvertisement compares the advertisement watch (advScanner in
// advWriter) with go-git's pkt-line Scanner on the real bytes upload-pack writes
// for the 100,000-ref repository, protocol v0 and v2 (capabilities, then the
// ls-refs response), both passing the bytes on to io.Discard. "gogit-decode"
// adds what a full parse with go-git's packp.AdvRefs costs (v0 only), for scale.
func BenchmarkPlumbingAdvertisement(b *testing.B) {
	fx := buildRefsFixture(b, b.TempDir(), "packed")
	for _, version := range []int{0, 2} {
		adv := advertisement(b, fx.dir, version)
		flushes := 1
		if version == 2 {
			flushes = 2
		}
		b.Logf("protocol v%d: advertisement of %d bytes", version, len(adv))
		if n, err := forwardGoGit(adv, io.Discard, flushes); err != nil || n != len(adv) {
			b.Fatalf("go-git scanner: %d of %d bytes, %v", n, len(adv), err)
		}
		var check bytes.Buffer
		if _, err := forwardHandwritten(adv, &check); err != nil || !bytes.Equal(check.Bytes(), adv) {
			b.Fatalf("advWriter wrote %d of %d bytes, %v", check.Len(), len(adv), err)
		}
		v := "v" + strconv.Itoa(version)
		b.Run("proto="+v+"/impl=handwritten", func(b *testing.B) {
			b.SetBytes(int64(len(adv)))
			for b.Loop() {
				if _, err := forwardHandwritten(adv, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("proto="+v+"/impl=gogit", func(b *testing.B) {
			b.SetBytes(int64(len(adv)))
			for b.Loop() {
				if _, err := forwardGoGit(adv, io.Discard, flushes); err != nil {
					b.Fatal(err)
				}
			}
		})
		if version == 0 {
			b.Run("proto="+v+"/impl=gogit-decode", func(b *testing.B) {
				b.SetBytes(int64(len(adv)))
				for b.Loop() {
					ar := packp.NewAdvRefs()
					if err := ar.Decode(bytes.NewReader(adv)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// goGitSkeleton creates the same repository as writeSkeleton with go-git's
// PlainInit (HEAD -> main), then writes what go-git does not: the store's
// configuration in place of go-git's, the description, the hook, and the hooks
// and info directories.
func goGitSkeleton(dir string) error {
	if _, err := gogit.PlainInitWithOptions(dir, &gogit.PlainInitOptions{
		Bare:        true,
		InitOptions: gogit.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	}); err != nil {
		return err
	}
	return writeSkeletonRest(dir)
}

// goGitStorageSkeleton uses go-git's storage-level Init (the object and ref
// directories) and writes the rest as writeSkeleton does.
func goGitStorageSkeleton(dir string) error {
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRUDefault())
	if err := st.Init(); err != nil {
		return err
	}
	if err := st.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))); err != nil {
		return err
	}
	return writeSkeletonRest(dir)
}

func writeSkeletonRest(dir string) error {
	for _, d := range []string{"hooks", "info"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for name, data := range map[string]string{"config": repoConfig, "description": "gitfleet repository\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	for _, h := range repoHooks() {
		if err := os.WriteFile(filepath.Join(dir, "hooks", h.name), []byte(h.script), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// skeletonFiles lists the paths, modes and contents under dir.
func skeletonFiles(dir string) (string, error) {
	var sb strings.Builder
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&sb, "%s %v", rel, fi.Mode().Type())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&sb, " %q", data)
		}
		sb.WriteString("\n")
		return nil
	})
	return sb.String(), err
}

// BenchmarkPlumbingCreate compares writeSkeleton with go-git's PlainInit and its
// storage-level Init, each completed to the same repository (checked once).
func BenchmarkPlumbingCreate(b *testing.B) {
	impls := []struct {
		name   string
		create func(string) error
	}{
		{"handwritten", writeSkeleton},
		{"gogit-plaininit", goGitSkeleton},
		{"gogit-storageinit", goGitStorageSkeleton},
	}
	parent := b.TempDir()
	var want string
	for i, impl := range impls {
		dir := filepath.Join(parent, "check-"+impl.name)
		if err := impl.create(dir); err != nil {
			b.Fatal(err)
		}
		got, err := skeletonFiles(dir)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			want = got
		} else if got != want {
			b.Logf("%s creates a different repository:\n%s\nwant:\n%s", impl.name, got, want)
		}
	}
	for _, impl := range impls {
		b.Run("impl="+impl.name, func(b *testing.B) {
			base := b.TempDir()
			n := 0
			for b.Loop() {
				n++
				if err := impl.create(filepath.Join(base, strconv.Itoa(n))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
