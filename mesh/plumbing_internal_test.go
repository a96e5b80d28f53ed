package mesh

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestHashRefsDefinition checks HashRefs against its definition, hex(SHA-256)
// over the sorted "<id> <ref>\n" lines, on enough refs to pass its buffer
// several times: mirrors compare the value with their upstream's.
func TestHashRefsDefinition(t *testing.T) {
	for _, n := range []int{0, 1, 3000} {
		refs := map[string]string{}
		for i := range n {
			refs[fmt.Sprintf("refs/heads/b%05d", (i*7919)%n)] = []string{id1, id2, id3}[i%3]
		}
		names := make([]string, 0, n)
		for name := range refs {
			names = append(names, name)
		}
		sort.Strings(names)
		var text strings.Builder
		for _, name := range names {
			text.WriteString(refs[name] + " " + name + "\n")
		}
		sum := sha256.Sum256([]byte(text.String()))
		if got, want := HashRefs(refs), hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%d refs: HashRefs = %s, want %s", n, got, want)
		}
	}
}

// TestReadRefsLooseWins checks that a loose ref overrides its packed value, and
// that lock files, symbolic refs and malformed files are left out.
func TestReadRefsLooseWins(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("packed-refs", "# pack-refs with: peeled fully-peeled sorted \n"+
		id1+" refs/heads/a\n"+id1+" refs/heads/b\n"+id2+" refs/tags/t\n^"+id3+"\n")
	write("refs/heads/b", id2+"\n")
	write("refs/heads/c", id3+"\n")
	write("refs/heads/d.lock", id3+"\n")
	write("refs/heads/e", "")
	write("refs/remotes/origin/HEAD", "ref: refs/heads/a\n")
	got, err := readRefs(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"refs/heads/a": id1, "refs/heads/b": id2, "refs/heads/c": id3, "refs/tags/t": id2}
	if !maps.Equal(got, want) {
		t.Fatalf("readRefs = %v, want %v", got, want)
	}
}

// TestAppendGrow checks that the advertisement buffer keeps every byte and
// doubles as it grows, so a large advertisement is copied about once.
func TestAppendGrow(t *testing.T) {
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	var buf, want []byte
	grew := 0
	for range 144 { // 9 MiB
		before := cap(buf)
		buf = appendGrow(buf, chunk)
		want = append(want, chunk...)
		if cap(buf) != before {
			grew++
			if before > 0 && cap(buf) < 2*before {
				t.Fatalf("capacity grew from %d to %d, want at least double", before, cap(buf))
			}
		}
	}
	if !bytes.Equal(buf, want) {
		t.Fatal("appendGrow lost or changed bytes")
	}
	if grew > 10 {
		t.Fatalf("buffer grew %d times for 144 chunks, want at most 10", grew)
	}
}
