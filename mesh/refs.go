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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Refs returns the repository's refs (name -> id) without running git: it reads the
// loose refs, then packed-refs, as git does, under the repository's read lock so the
// result is one consistent snapshot. A repository with many refs is read from
// memory after its first read (see refsCache).
func (s *Store) Refs(ctx context.Context, project, slug string) (map[string]string, error) {
	var refs map[string]string
	err := s.readRefsLocked(ctx, project, slug, func(key, dir string) error {
		if refs = s.refs.get(key); refs != nil {
			return nil
		}
		var err error
		if refs, err = readRefs(dir); err == nil && len(refs) >= refsCacheMin {
			s.refs.fill(key, maps.Clone(refs), "")
		}
		return err
	})
	return refs, err
}

// RefsHash returns hex(SHA-256) over the sorted "<id> <ref>\n" lines of Refs.
func (s *Store) RefsHash(ctx context.Context, project, slug string) (string, error) {
	var hash string
	err := s.readRefsLocked(ctx, project, slug, func(key, dir string) error {
		if hash = s.refs.hash(key); hash != "" {
			return nil
		}
		refs, err := readRefs(dir)
		if err != nil {
			return err
		}
		hash = HashRefs(refs)
		s.refs.fill(key, refs, hash)
		return nil
	})
	return hash, err
}

// readRefsLocked calls read with the repository's key and directory under its
// read lock.
func (s *Store) readRefsLocked(ctx context.Context, project, slug string, read func(key, dir string) error) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	p, sl, err := repoName(project, slug)
	if err != nil {
		return err
	}
	key := repoKey(p, sl)
	lock := s.locks.get(key)
	if err := lock.RLock(ctx); err != nil {
		return err
	}
	defer lock.RUnlock()
	_, _, dir, err := s.openRepo(p, sl)
	if err != nil {
		return err
	}
	if err := read(key, dir); err != nil {
		return fmt.Errorf("mesh: refs of %s/%s: %w", p, sl, err)
	}
	return nil
}

// HashRefs returns hex(SHA-256) over the lines "<id> <ref>\n" of refs sorted by ref
// name: the value RefsHash reports.
func HashRefs(refs map[string]string) string {
	names := make([]string, 0, len(refs))
	for name := range refs {
		names = append(names, name)
	}
	slices.Sort(names)
	h := sha256.New()
	// The lines go to the hash through a buffer: written one string at a time
	// they would each be copied to a new []byte.
	w := bufio.NewWriterSize(h, 32<<10)
	for _, name := range names {
		w.WriteString(refs[name])
		w.WriteByte(' ')
		w.WriteString(name)
		w.WriteByte('\n')
	}
	w.Flush() // writing to a hash never fails
	return hex.EncodeToString(h.Sum(nil))
}

// readRefs reads the loose refs under dir/refs and then dir/packed-refs; a loose ref
// wins over a packed one. Reading loose refs first means a concurrent pack-refs
// (which writes packed-refs before removing loose files) cannot hide a ref.
// Symbolic refs and unreadable or malformed entries are skipped.
func readRefs(dir string) (map[string]string, error) {
	refs := map[string]string{}
	err := filepath.WalkDir(filepath.Join(dir, "refs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if !d.Type().IsRegular() || strings.HasSuffix(d.Name(), ".lock") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		id := string(bytes.TrimRight(data, "\n"))
		if !isObjectID(id) {
			return nil // a symbolic ref or a file being written
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		refs[filepath.ToSlash(rel)] = id
		return nil
	})
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return refs, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	packed, err := parsePackedRefs(f)
	if err != nil {
		return nil, err
	}
	// Usually most refs are packed: add the loose ones to the packed map.
	for name, id := range refs {
		packed[name] = id
	}
	return packed, nil
}

// parsePackedRefs parses a packed-refs file: a "# pack-refs with:" header, lines
// "<id> <refname>", and "^<id>" lines giving the peeled value of the tag above.
// Malformed lines are skipped, as git skips nothing but never writes them either.
func parsePackedRefs(r io.Reader) (map[string]string, error) {
	refs := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		id, name, ok := strings.Cut(line, " ")
		if !ok || !isObjectID(id) || !strings.HasPrefix(name, "refs/") {
			continue
		}
		refs[name] = id
	}
	return refs, sc.Err()
}
