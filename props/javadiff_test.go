package props

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// javaCases are hand-written files for the differential test: every rule of
// DESIGN.md and the corners between them.
var javaCases = []string{
	"",
	"a=b",
	"a=b\n",
	"a = b\r\nc : d\re\tf\fg\n",
	"=v\n",
	":v\n",
	" =v\n",
	"k = = v\n",
	"k := v\n",
	"k\t\t:\t= v\n",
	"k\n",
	"k=\n",
	"k=v  \n",
	"k=v\\\n  w\n",
	"k=v\\\r\n  w\r\n",
	"k=v\\\r  w\r",
	"k=v\\\\\n w=x\n",
	"k=v\\\\\\\n w\n",
	"k=v\\",
	"k=v\\\n",
	"\\",
	"\\\n",
	"\\\n#c\nk=v\n",
	"\\\n\nk=v\n",
	"k=v\\\n\nn=m\n",
	"k=v\\\n#not a comment\nX",
	"# comment\\\nk=v\n",
	"! comment\nk=v\n",
	"   # indented comment\n  k=v\n",
	"#\r\n#\r\nk=v",
	"k\\ ey=v\n",
	"k\\=ey=v\n",
	"k\\:ey:v\n",
	"k\\\\=v\n",
	"k=\\t\\n\\r\\f\\a\\b\\\\\n",
	"k=\\u0041\\u00e9\\u20AC\n",
	"k=\\uD83D\\uDE00\n",
	"k=\\uD83D\n",
	"k=\\uDE00x\n",
	"k=\\uD83Dx\\uDE00\n",
	"k=\\u00\n",
	"k=\\u00zz\n",
	"a=1\nk=\\u12\n",
	"k=v\nk=w\n",
	"k=caf\xc3\xa9 \xf0\x9f\x98\x80\n",
	"k=caf\xe9\n",
	"\xef\xbb\xbfk=v\n",
	"\xef\xbb\xbfk=v\xff\n",
	"k=\\\xc3\xa9\n",
	"k=\\\xe9\n",
	"k=${x}\nx=${k\n",
	"server.proxy-name=example.com\nplugin.ssh.disabled.ciphers[0]=aes128-cbc\n",
	"\n\n   \n\t\f\nk=v\n\n",
	"k=v\r\n\r\n\r\n",
	"k=a\\\r\n\r\nb=c\r\n",
	"k  v  w\n",
	"k\\\n  ey=v\n",
	"\\#k=v\n\\!k=w\n",
	"k=v\\\r\n#x\r\n",
}

// javaAlphabet is what generated files are made of.
var javaAlphabet = []string{
	"a", "k", "=", ":", " ", "\t", "\f", "\\", "\\", "\r", "\n", "\r\n", "#", "!",
	"u", "0", "D83D", "DE00", "\\u0041", "\\uD83D", "\xc3\xa9", "\xe9", "\xef\xbb\xbf", "${", "}",
}

// generatedJavaCases returns n random files over javaAlphabet, the same each run.
func generatedJavaCases(n int) []string {
	rng := rand.New(rand.NewPCG(3, 1993))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for range rng.IntN(40) {
			b.WriteString(javaAlphabet[rng.IntN(len(javaAlphabet))])
		}
		out[i] = b.String()
	}
	return out
}

// bufferBoundaryCases puts line ends, continuations and comments across the
// JDK reader's 8,192-character buffer boundary, and adds large random files.
func bufferBoundaryCases() []string {
	var out []string
	for _, tail := range []string{"\\\r\n  x\n", "\\\r", "\\", "\r\n#c\\\nk=v", "\\\n#c\n", "\\u0041\n"} {
		for shift := -3; shift <= 1; shift++ {
			pad := 8192 - len("k=") + shift
			out = append(out, "k="+strings.Repeat("v", pad)+tail)
		}
	}
	rng := rand.New(rand.NewPCG(8192, 7))
	// Without a bare "u" a large file rarely holds a malformed \u escape, so
	// most of them compare entries rather than both readers failing.
	alphabet := slices.DeleteFunc(slices.Clone(javaAlphabet), func(s string) bool { return s == "u" })
	for range 10 {
		var b strings.Builder
		for b.Len() < 20000 {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		out = append(out, b.String())
	}
	return out
}

// javaResult is what PropsDump printed for one file: nil map for an error.
type javaResult map[string]string

// runJava loads every file through the JDK in one JVM and returns the results
// by file path.
func runJava(t *testing.T, java string, files []string) map[string]javaResult {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("testdata", "java", "PropsDump.java"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), java, append([]string{"-Xshare:auto", "-XX:TieredStopAtLevel=1", src}, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("java: %v\n%s", err, stderr.String())
	}
	results := map[string]javaResult{}
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "FILE":
			cur = rest
			results[cur] = javaResult{}
		case "ERR":
			results[cur] = nil
		case "KV":
			k, v, _ := strings.Cut(rest, " ")
			results[cur][javaString(t, k)] = javaString(t, v)
		default:
			t.Fatalf("unexpected java output line %q", sc.Text())
		}
	}
	return results
}

// javaString decodes PropsDump's hex UTF-16 units; lone surrogates become
// U+FFFD, as the props package documents.
func javaString(t *testing.T, h string) string {
	if h == "-" {
		return ""
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(units))
}

func TestJavaDifferential(t *testing.T) {
	java := testutil.Require(t, "java")
	cases := append(append([]string{}, javaCases...), generatedJavaCases(400)...)
	cases = append(cases, bufferBoundaryCases()...)
	golden, err := filepath.Glob(filepath.Join("testdata", "golden", "*.properties"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var files []string
	contents := map[string][]byte{}
	for i, c := range cases {
		p := filepath.Join(dir, fmt.Sprintf("case%03d.properties", i))
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		contents[p] = []byte(c)
	}
	for _, g := range golden {
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := filepath.Abs(g)
		files = append(files, p)
		contents[p] = data
	}
	// Files saved after edits must read back in the JDK with the edited values.
	edited := map[string]map[string]string{}
	for i, p := range slices.Clone(files) {
		f, err := Parse(p, contents[p])
		if err != nil || i%3 != 0 {
			continue
		}
		want := map[string]string{}
		for _, e := range f.Entries() {
			want[e.Key] = e.Value
		}
		for j, e := range f.Entries() {
			if j%2 == 0 {
				f.Set(e.Key, "edited: "+e.Value+" \\ #!=\t\u00e9\U0001F600 ")
				want[e.Key] = "edited: " + e.Value + " \\ #!=\t\u00e9\U0001F600 "
			} else {
				f.Delete(e.Key)
				delete(want, e.Key)
			}
		}
		f.Set(" new key=:", " x ")
		want[" new key=:"] = " x "
		q := filepath.Join(dir, fmt.Sprintf("edited%03d.properties", i))
		if err := os.WriteFile(q, f.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, q)
		edited[q] = want
	}
	results := runJava(t, java, files)
	if len(results) != len(files) {
		t.Fatalf("java reported %d files, want %d", len(results), len(files))
	}
	for q, want := range edited {
		if got := results[q]; got == nil || !equalMaps(got, want) {
			t.Errorf("saved file %s: the JDK reads %q, want %q", q, map[string]string(got), want)
		}
		delete(results, q)
	}
	files = slices.DeleteFunc(files, func(p string) bool { return edited[p] != nil })
	mismatches, rejected, entries := 0, 0, 0
	for _, p := range files {
		want := results[p]
		if want == nil {
			rejected++
		}
		entries += len(want)
		f, err := Parse(p, contents[p])
		if want == nil {
			if err == nil {
				t.Errorf("%q: Java rejects the file, props accepted it: %v", contents[p], f.Entries())
				mismatches++
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: Java accepts the file, props: %v", contents[p], err)
			mismatches++
			continue
		}
		got := map[string]string{}
		for _, e := range f.Entries() {
			got[e.Key] = e.Value
		}
		if !equalMaps(got, want) {
			t.Errorf("%q:\n props %q\n java  %q", contents[p], got, map[string]string(want))
			mismatches++
		}
		if mismatches > 20 {
			t.Fatal("too many mismatches")
		}
	}
	t.Logf("compared %d files with the JDK: %d rejected by both, %d entries; %d edited files read back as saved",
		len(files), rejected, entries, len(edited))
	if entries < len(files) {
		t.Fatalf("only %d entries in %d files: the comparison is not exercising the reader", entries, len(files))
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
