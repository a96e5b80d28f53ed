package props

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
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
