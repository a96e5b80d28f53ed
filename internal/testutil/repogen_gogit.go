package testutil

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// BuildRepoGoGit creates a bare repository at dir filled according to spec with
// go-git, without the git program. Its objects and refs are those BuildRepo
// makes (the same ids); only the packing differs (loose objects here).
func BuildRepoGoGit(dir string, spec RepoSpec) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		Bare:        true,
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	if err != nil {
		return fmt.Errorf("testutil: init %s: %w", dir, err)
	}
	b := &specBuilder{st: repo.Storer, hashes: map[int]plumbing.Hash{}, files: map[string]plumbing.Hash{}}
	err = WalkSpec(spec, SpecVisitor{Blob: b.blob, Commit: b.commit, Branch: b.branch, Tag: b.tag})
	if err != nil {
		return fmt.Errorf("testutil: build %s: %w", dir, err)
	}
	return nil
}

// specBuilder writes a WalkSpec history into a go-git storer.
type specBuilder struct {
	st     storer.Storer
	hashes map[int]plumbing.Hash // mark -> object id
	files  map[string]plumbing.Hash
	head   plumbing.Hash
}

func (b *specBuilder) store(t plumbing.ObjectType, encode func(plumbing.EncodedObject) error) (plumbing.Hash, error) {
	obj := b.st.NewEncodedObject()
	obj.SetType(t)
	if err := encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return b.st.SetEncodedObject(obj)
}

func (b *specBuilder) blob(mark int, content []byte) error {
	h, err := b.store(plumbing.BlobObject, func(o plumbing.EncodedObject) error {
		w, err := o.Writer()
		if err != nil {
			return err
		}
		if _, err := w.Write(content); err != nil {
			return err
		}
		return w.Close()
	})
	b.hashes[mark] = h
	return err
}

func (b *specBuilder) commit(c SpecCommit) error {
	for _, f := range c.Files {
		b.files[f.Path] = b.hashes[f.Blob]
	}
	tree, err := b.tree("")
	if err != nil {
		return err
	}
	when := time.Unix(c.Time, 0).UTC()
	commit := &object.Commit{
		Author:    object.Signature{Name: SpecAuthorName, Email: SpecAuthorEmail, When: when},
		Committer: object.Signature{Name: SpecCommitterName, Email: SpecCommitterEmail, When: when},
		Message:   c.Message,
		TreeHash:  tree,
	}
	if !b.head.IsZero() {
		commit.ParentHashes = []plumbing.Hash{b.head}
	}
	h, err := b.store(plumbing.CommitObject, commit.Encode)
	if err != nil {
		return err
	}
	b.hashes[c.Mark], b.head = h, h
	return b.st.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName("main"), h))
}

// tree writes the tree of the directory prefix (empty for the root, else ending
// in '/') from b.files and returns its id.
func (b *specBuilder) tree(prefix string) (plumbing.Hash, error) {
	var entries []object.TreeEntry
	dirs := map[string]bool{}
	for path, h := range b.files {
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok {
			continue
		}
		if dir, _, isDir := strings.Cut(rest, "/"); isDir {
			if !dirs[dir] {
				dirs[dir] = true
				sub, err := b.tree(prefix + dir + "/")
				if err != nil {
					return plumbing.ZeroHash, err
				}
				entries = append(entries, object.TreeEntry{Name: dir, Mode: filemode.Dir, Hash: sub})
			}
			continue
		}
		entries = append(entries, object.TreeEntry{Name: rest, Mode: filemode.Regular, Hash: h})
	}
	// Git orders tree entries by name, a directory's name compared as if it
	// ended in '/'.
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(entries, func(i, j int) bool { return key(entries[i]) < key(entries[j]) })
	t := &object.Tree{Entries: entries}
	return b.store(plumbing.TreeObject, t.Encode)
}

func (b *specBuilder) branch(name string, commit int) error {
	return b.st.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(name), b.hashes[commit]))
}

func (b *specBuilder) tag(name string, commit int, when int64, message string) error {
	t := &object.Tag{
		Name:       name,
		Tagger:     object.Signature{Name: SpecTaggerName, Email: SpecTaggerEmail, When: time.Unix(when, 0).UTC()},
		Message:    message,
		TargetType: plumbing.CommitObject,
		Target:     b.hashes[commit],
	}
	h, err := b.store(plumbing.TagObject, t.Encode)
	if err != nil {
		return err
	}
	return b.st.SetReference(plumbing.NewHashReference(plumbing.NewTagReferenceName(name), h))
}
