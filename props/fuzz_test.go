package props

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParse checks that parsing never panics, that an unedited file is written
// back byte for byte, and that parse, edit, save, parse returns exactly the
// edited values.
func FuzzParse(f *testing.F) {
	for _, c := range javaCases {
		f.Add([]byte(c), "k", "v")
	}
	golden, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.properties"))
	for _, g := range golden {
		if data, err := os.ReadFile(g); err == nil {
			f.Add(data, "server.port", " x\\y\n")
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, key, value string) {
		file, err := Parse("f.properties", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v is not a *ParseError with a line", err)
			}
			return
		}
		if got := file.Bytes(); string(got) != string(data) {
			t.Fatalf("unedited file written back differently:\n%q\n%q", data, got)
		}
		want := map[string]string{}
		for _, e := range file.Entries() {
			want[e.Key] = e.Value
		}
		again := mustParse(t, string(file.Bytes()))
		if kv(again.Entries()) != kv(file.Entries()) {
			t.Fatalf("reparse differs: %s vs %s", kv(again.Entries()), kv(file.Entries()))
		}
		// Edit: set the fuzzed key, replace the first key, delete the last one.
		es := file.Entries()
		file.Set(key, value)
		key, value = string([]rune(key)), string([]rune(value))
		want[key] = value
		if len(es) > 0 {
			file.Set(es[0].Key, value+"!")
			want[es[0].Key] = value + "!"
			if last := es[len(es)-1].Key; last != key && last != es[0].Key {
				file.Delete(last)
				delete(want, last)
			}
		}
		saved := file.Bytes()
		back, err := Parse("f.properties", saved)
		if err != nil {
			t.Fatalf("saved file does not parse: %v\n%q", err, saved)
		}
		got := map[string]string{}
		for _, e := range back.Entries() {
			got[e.Key] = e.Value
		}
		if !equalMaps(got, want) {
			t.Fatalf("after edits:\n input %q\n saved %q\n got  %q\n want %q", data, saved, got, want)
		}
	})
}

// FuzzResolve checks that placeholder resolution never panics or loops, and
// that a value without "${" resolves to itself.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"${a}", "${a:b}", "${${a}}", "${a:${b:c}}", "${", "}${", "${a", "x${}y", "${:}", "${a}${b}", "${loop}"} {
		f.Add(s, "${x}")
	}
	f.Fuzz(func(t *testing.T, value, other string) {
		p := New(&File{chunks: []chunk{
			{entry: &Entry{Key: "v", Value: value}},
			{entry: &Entry{Key: "a", Value: other}},
			{entry: &Entry{Key: "loop", Value: "${v}"}},
		}}, []string{"A=env"})
		got, found, err := p.Resolve("v")
		if !found {
			t.Fatal("v not found")
		}
		if !strings.Contains(value, "${") && (err != nil || got != value) {
			t.Fatalf("Resolve(%q) = %q, %v; want the value itself", value, got, err)
		}
	})
}

// FuzzParseDuration checks that ParseDuration never panics and that a bare
// number is seconds.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"3m", "180s", "1h", "180", "PT3M", "P1DT2H3M4.5S", "1d", "-5s", "1m30s", "P", "PT"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if n, perr := strconv.ParseInt(strings.TrimSpace(s), 10, 64); perr == nil {
			if err != nil || d != time.Duration(n)*time.Second {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %d seconds", s, d, err, n)
			}
		}
	})
}

// FuzzConfig sets one known key to any value and checks that conversion,
// validation and the derived URLs never panic, and that a conversion problem
// names that key and its line.
func FuzzConfig(f *testing.F) {
	keys := KnownKeys()
	for i, k := range keys {
		f.Add(uint8(i), k.Default)
		f.Add(uint8(i), "${"+k.Key+"}")
	}
	f.Add(uint8(0), "99999999999999999999")
	f.Add(uint8(16), "10.0.0.0/33,::1")
	f.Fuzz(func(t *testing.T, idx uint8, value string) {
		key := keys[int(idx)%len(keys)].Key
		file, err := Parse("f.properties", []byte("# fuzz\n"+EscapeKey(key)+"="+EscapeValue(value)+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		p := New(file, []string{})
		c, err := p.Config()
		var ps Problems
		if err != nil && !errors.As(err, &ps) {
			t.Fatalf("Config: %v", err)
		}
		for _, pr := range ps {
			if pr.Key != key || pr.Source.Line != 2 {
				t.Fatalf("problem %v does not name %s at line 2", pr, key)
			}
		}
		_ = c.Validate()
		_ = c.PublicBaseURL()
		_ = c.SSHBaseURL()
	})
}
