package props

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFileEdits(t *testing.T) {
	type edit struct {
		key, value string
		del        bool
	}
	tests := []struct {
		name  string
		in    string
		edits []edit
		want  string
	}{
		{"replace in place", "# c\na=1\nb=2\n", []edit{{key: "a", value: "9"}}, "# c\na=9\nb=2\n"},
		{"append new key", "# c\na=1\n", []edit{{key: "n", value: "v"}}, "# c\na=1\nn=v\n"},
		{"append after missing final newline", "a=1", []edit{{key: "n", value: "v"}}, "a=1\nn=v\n"},
		{"append after final backslash", "a=1\\", []edit{{key: "n", value: "v"}}, "a=1\nn=v\n"},
		{"append after comment without newline", "a=1\n# end", []edit{{key: "n", value: "v"}}, "a=1\n# end\nn=v\n"},
		{"keep CRLF", "# c\r\na=1\r\n", []edit{{key: "a", value: "2"}, {key: "b", value: "3"}}, "# c\r\na=2\r\nb=3\r\n"},
		{"replace continued line", "a=1\\\n  2\\\n  3\nb=x\n", []edit{{key: "a", value: "123"}}, "a=123\nb=x\n"},
		{"duplicates collapse to the last line", "a=1\nb=2\na=3\n", []edit{{key: "a", value: "4"}}, "b=2\na=4\n"},
		{"delete all duplicates", "a=1\n# keep\na=2\nb=3\n", []edit{{key: "a", del: true}}, "# keep\nb=3\n"},
		{"delete keeps comments above", "# about a\na=1\n\n# about b\nb=2\n", []edit{{key: "a", del: true}}, "# about a\n\n# about b\nb=2\n"},
		{"escape like store", "", []edit{{key: "a key", value: " v=1:#!\té"}}, "a\\ key=\\ v\\=1\\:\\#\\!\\t\\u00E9\n"},
		{"BOM kept", "\xef\xbb\xbfa=1\n", []edit{{key: "a", value: "2"}}, "\xef\xbb\xbfa=2\n"},
		{"empty key", "=v\n", []edit{{key: "", value: "w"}}, "=w\n"},
		{
			"Latin-1 file that would turn into UTF-8",
			"a=\xe9\nb=\xc3\xa9\n", []edit{{key: "a", value: "x"}},
			"a=x\nb=\\u00C3\\u00A9\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.in)
			want := map[string]string{}
			for _, e := range f.Entries() {
				want[e.Key] = e.Value
			}
			for _, e := range tt.edits {
				if e.del {
					if !f.Delete(e.key) {
						t.Errorf("Delete(%q) = false", e.key)
					}
					delete(want, e.key)
				} else {
					f.Set(e.key, e.value)
					want[e.key] = e.value
				}
			}
			got := f.Bytes()
			if string(got) != tt.want {
				t.Errorf("after edits:\n got  %q\n want %q", got, tt.want)
			}
			back := mustParse(t, string(got))
			gotMap := map[string]string{}
			for _, e := range back.Entries() {
				gotMap[e.Key] = e.Value
			}
			if !equalMaps(gotMap, want) {
				t.Errorf("read back %q, want %q", gotMap, want)
			}
			// Line numbers after an edit match those of a fresh parse.
			if kv(f.Entries()) != kv(back.Entries()) {
				t.Errorf("entries after edit %s, fresh parse %s", kv(f.Entries()), kv(back.Entries()))
			}
		})
	}
}

func TestDeleteMissing(t *testing.T) {
	f := mustParse(t, "a=1\n")
	if f.Delete("b") {
		t.Error("Delete of a missing key reported true")
	}
	if string(f.Bytes()) != "a=1\n" {
		t.Errorf("Delete of a missing key changed the file: %q", f.Bytes())
	}
}

func TestSaveNewFileAndMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bitbucket.properties")
	f, err := Parse(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Set("setup.sysadmin.password", "hunter2")
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("new file mode = %v, want 0600", st.Mode().Perm())
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f.Set("a", "b")
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode after second save = %v, want 0644 kept", st.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after saving, want only the file (no temporary files)", len(entries))
	}
	back, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if kv(back.Entries()) != `"setup.sysadmin.password"="hunter2"@1 "a"="b"@2` {
		t.Errorf("saved file reads back as %s", kv(back.Entries()))
	}
}

func TestSaveFailsInMissingDirectory(t *testing.T) {
	f, err := Parse(filepath.Join(t.TempDir(), "missing", "bitbucket.properties"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Set("a", "b")
	if err := f.Save(); err == nil {
		t.Error("Save into a missing directory succeeded")
	}
}

func TestSaveFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.properties")
	link := filepath.Join(dir, "bitbucket.properties")
	if err := os.WriteFile(real, []byte("# keep\na=1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.properties", link); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(link)
	if err != nil {
		t.Fatal(err)
	}
	f.Set("a", "2")
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", st, err)
	}
	data, err := os.ReadFile(real)
	if err != nil || string(data) != "# keep\na=2\n" {
		t.Errorf("target holds %q, %v", data, err)
	}
}
