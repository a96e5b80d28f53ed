package props

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a parsed properties file that can be edited and written back. It keeps
// the file's bytes around its entries, so comments, blank lines and the layout of
// untouched lines survive Set, Delete and Save.
type File struct {
	// Path is the file's path; it names the file in sources and errors, and Save
	// writes to it.
	Path string

	enc    Encoding
	chunks []chunk
}

// chunk is a run of the file's bytes: either one logical line holding an entry,
// or the comments and blank lines between entries.
type chunk struct {
	raw   []byte
	entry *Entry // nil for comments and blank lines
}

// Parse reads data with the exact rules of java.util.Properties.load. name is
// used in sources and errors. A file that is valid UTF-8 is decoded as UTF-8
// with a leading byte order mark dropped, like load(Reader); any other file as
// ISO-8859-1, like load(InputStream). A malformed \uXXXX escape is a
// *ParseError naming the line, as it fails Java's load.
func Parse(name string, data []byte) (*File, error) {
	data = bytes.Clone(data) // the chunks below refer to it
	enc, offset := detectEncoding(data)
	f := &File{Path: name, enc: enc}
	r := &lineReader{data: data, pos: offset, line: 1}
	gapStart := 0
	for {
		content, start, line, end, ok := r.next()
		if !ok {
			break
		}
		k, v := splitKeyValue(content)
		key, err := unescape(k, enc)
		if err != nil {
			return nil, &ParseError{File: name, Line: line, Msg: err.Error()}
		}
		value, err := unescape(v, enc)
		if err != nil {
			return nil, &ParseError{File: name, Line: line, Msg: err.Error()}
		}
		if start > gapStart {
			f.chunks = append(f.chunks, chunk{raw: data[gapStart:start]})
		}
		f.chunks = append(f.chunks, chunk{
			raw:   data[start:end],
			entry: &Entry{Key: key, Value: value, Source: Source{File: name, Line: line}},
		})
		gapStart = end
	}
	if gapStart < len(data) {
		f.chunks = append(f.chunks, chunk{raw: data[gapStart:]})
	}
	return f, nil
}

// ReadFile reads and parses the properties file at path. A missing file is
// returned as an error that matches fs.ErrNotExist.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Encoding returns how the file's bytes were decoded.
func (f *File) Encoding() Encoding { return f.enc }

// Entries returns the file's effective entries in the order of their last
// occurrence: a key given twice has the value of its last line.
func (f *File) Entries() []Entry {
	last := make(map[string]int, len(f.chunks))
	for i, c := range f.chunks {
		if c.entry != nil {
			last[c.entry.Key] = i
		}
	}
	out := make([]Entry, 0, len(last))
	for i, c := range f.chunks {
		if c.entry != nil && last[c.entry.Key] == i {
			out = append(out, *c.entry)
		}
	}
	return out
}

// Lookup returns the entry for key, the last one if the key is repeated.
func (f *File) Lookup(key string) (Entry, bool) {
	for i := len(f.chunks) - 1; i >= 0; i-- {
		if e := f.chunks[i].entry; e != nil && e.Key == key {
			return *e, true
		}
	}
	return Entry{}, false
}

// Set gives key the value. The key's last line is replaced in place and its
// earlier, shadowed lines are removed; a new key is appended at the end. The
// line is written escaped as Java's Properties.store escapes it, in ASCII, so it
// reads back the same in either encoding. Bytes that are not valid UTF-8 are
// stored as U+FFFD.
func (f *File) Set(key, value string) {
	key, value = string([]rune(key)), string([]rune(value))
	eol := f.lineEnding()
	line := []byte(EscapeKey(key) + "=" + EscapeValue(value) + eol)
	target := -1
	for i := len(f.chunks) - 1; i >= 0; i-- {
		if e := f.chunks[i].entry; e != nil && e.Key == key {
			target = i
			break
		}
	}
	entry := &Entry{Key: key, Value: value, Source: Source{File: f.Path}}
	if target < 0 {
		if n := len(f.chunks); n > 0 {
			last := &f.chunks[n-1]
			if l := len(last.raw); l > 0 && last.raw[l-1] != '\n' && last.raw[l-1] != '\r' {
				if last.entry != nil && oddTrailingBackslashes(last.raw) {
					// A final backslash would continue onto the new line: write the
					// entry out again.
					last.raw = []byte(EscapeKey(last.entry.Key) + "=" + EscapeValue(last.entry.Value))
				}
				last.raw = append(last.raw[:len(last.raw):len(last.raw)], eol...)
			}
		}
		f.chunks = append(f.chunks, chunk{raw: line, entry: entry})
	} else {
		f.chunks[target] = chunk{raw: line, entry: entry}
		f.removeKey(key, target)
	}
	f.renumber()
}

// Delete removes every line that sets key and reports whether there was one.
func (f *File) Delete(key string) bool {
	n := len(f.chunks)
	f.removeKey(key, -1)
	if len(f.chunks) == n {
		return false
	}
	f.renumber()
	return true
}

// removeKey drops the chunks holding key, except the one at index keep.
func (f *File) removeKey(key string, keep int) {
	out := f.chunks[:0]
	for i, c := range f.chunks {
		if c.entry != nil && c.entry.Key == key && i != keep {
			continue
		}
		out = append(out, c)
	}
	clear(f.chunks[len(out):])
	f.chunks = out
}

// renumber recomputes the line numbers of the entries after an edit.
func (f *File) renumber() {
	line := 1
	for i, c := range f.chunks {
		if c.entry != nil {
			e := *c.entry
			e.Source.Line = line
			f.chunks[i].entry = &e
		}
		line += countLines(c.raw)
	}
}

// oddTrailingBackslashes reports whether b ends in an odd number of backslashes.
func oddTrailingBackslashes(b []byte) bool {
	n := 0
	for i := len(b) - 1; i >= 0 && b[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// countLines counts the line terminators in b ("\r\n" once).
func countLines(b []byte) int {
	n := 0
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') || c == '\r' {
			n++
		}
	}
	return n
}

// lineEnding returns the file's first line ending, or "\n".
func (f *File) lineEnding() string {
	for _, c := range f.chunks {
		if i := bytes.IndexAny(c.raw, "\r\n"); i >= 0 {
			if c.raw[i] == '\r' {
				if i+1 < len(c.raw) && c.raw[i+1] == '\n' {
					return "\r\n"
				}
				return "\r"
			}
			return "\n"
		}
	}
	return "\n"
}

// Bytes returns the file's content as Save would write it.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	for _, c := range f.chunks {
		b.Write(c.raw)
	}
	out := b.Bytes()
	if f.enc == Latin1 && !isASCII(out) && detectEncodingIs(out, UTF8) {
		// Removing or replacing lines took away the bytes that made the file
		// ISO-8859-1; rewrite the entries that hold other non-ASCII bytes so the
		// values do not change when the file is read back as UTF-8.
		b.Reset()
		eol := f.lineEnding()
		for _, c := range f.chunks {
			if c.entry != nil && !isASCII(c.raw) {
				b.WriteString(EscapeKey(c.entry.Key) + "=" + EscapeValue(c.entry.Value) + eol)
				continue
			}
			b.Write(c.raw)
		}
		out = b.Bytes()
	}
	return out
}

func detectEncodingIs(data []byte, want Encoding) bool {
	enc, _ := detectEncoding(data)
	return enc == want
}

// Save writes the file to f.Path atomically (see WriteFileAtomic), keeping the
// mode of an existing file; a new file gets mode 0600 because it may hold
// passwords.
//
// A symbolic link is followed: the file it points to is replaced, the link kept.
func (f *File) Save() error {
	path := f.Path
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	mode := fs.FileMode(0o600)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return WriteFileAtomic(path, f.Bytes(), mode)
}
