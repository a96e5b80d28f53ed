package props

import (
	"bytes"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Encoding is how the bytes of a properties file are turned into characters.
type Encoding int

const (
	// UTF8 is used for a file that is valid UTF-8 (a leading byte order mark is
	// dropped), as Java's Properties.load(Reader) over a UTF-8 reader reads it.
	UTF8 Encoding = iota
	// Latin1 is used for any other file, as Java's Properties.load(InputStream)
	// reads it: every byte is one ISO-8859-1 character.
	Latin1
)

// String returns "UTF-8" or "ISO-8859-1".
func (e Encoding) String() string {
	if e == Latin1 {
		return "ISO-8859-1"
	}
	return "UTF-8"
}

// ParseError reports input that Java's Properties.load rejects, such as a
// malformed \uXXXX escape.
type ParseError struct {
	File string // the file's name as given to Parse
	Line int    // 1-based line on which the offending logical line starts
	Msg  string
}

// Error returns "props: file:line: message".
func (e *ParseError) Error() string {
	return fmt.Sprintf("props: %s:%d: %s", e.File, e.Line, e.Msg)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// detectEncoding returns the encoding of data and the offset at which its
// content starts (after a UTF-8 byte order mark).
func detectEncoding(data []byte) (Encoding, int) {
	if !utf8.Valid(data) {
		return Latin1, 0
	}
	if bytes.HasPrefix(data, utf8BOM) {
		return UTF8, len(utf8BOM)
	}
	return UTF8, 0
}

// lineReader splits input into logical lines exactly as java.util.Properties'
// LineReader does, remembering where each logical line starts and ends so that
// the file can be rewritten around it.
type lineReader struct {
	data   []byte
	pos    int
	line   int // physical line number at pos, 1-based
	skipLF bool
	buf    []byte
}

// terminator counts the line ending data[i] (a '\r' or '\n' just consumed);
// the '\n' of a "\r\n" pair does not start another line.
func (r *lineReader) terminator(i int) {
	if r.data[i] == '\r' || i == 0 || r.data[i-1] != '\r' {
		r.line++
	}
}

// next returns the content of the next logical line with continuations joined
// (escapes still raw), the byte offset and line number at which its first
// physical line starts, and the offset just past its last line terminator. ok is
// false when no logical line is left.
func (r *lineReader) next() (content []byte, start, startLine, end int, ok bool) {
	buf := r.buf[:0]
	defer func() { r.buf = buf[:0] }()
	skipWhite, appended, backslash := true, false, false
	lineStart, lineNo := r.pos, r.line
	start = -1
	for {
		if r.pos >= len(r.data) {
			if len(buf) == 0 {
				return nil, 0, 0, 0, false
			}
			if backslash {
				buf = buf[:len(buf)-1]
			}
			return buf, start, startLine, r.pos, true
		}
		c := r.data[r.pos]
		r.pos++
		if r.skipLF {
			r.skipLF = false
			if c == '\n' {
				continue
			}
		}
		if skipWhite {
			if c == ' ' || c == '\t' || c == '\f' {
				continue
			}
			if !appended && (c == '\r' || c == '\n') {
				r.terminator(r.pos - 1)
				lineStart, lineNo = r.pos, r.line
				continue
			}
			skipWhite, appended = false, false
		}
		if len(buf) == 0 && (c == '#' || c == '!') {
			// A comment runs to the end of its physical line, terminator included.
			for r.pos < len(r.data) {
				b := r.data[r.pos]
				r.pos++
				if b == '\r' || b == '\n' {
					r.terminator(r.pos - 1)
					break
				}
			}
			if start < 0 {
				lineStart, lineNo = r.pos, r.line
			}
			skipWhite = true
			continue
		}
		if c != '\n' && c != '\r' {
			if start < 0 {
				start, startLine = lineStart, lineNo
			}
			buf = append(buf, c)
			backslash = c == '\\' && !backslash
			continue
		}
		// End of a physical line.
		r.terminator(r.pos - 1)
		if len(buf) == 0 {
			skipWhite = true
			if start < 0 {
				lineStart, lineNo = r.pos, r.line
			}
			continue
		}
		if r.pos >= len(r.data) {
			if backslash {
				buf = buf[:len(buf)-1]
			}
			return buf, start, startLine, r.pos, true
		}
		if !backslash {
			end = r.pos
			if c == '\r' && r.data[r.pos] == '\n' {
				// Java skips this '\n' as an empty line; it belongs to this one.
				r.pos++
				end = r.pos
			}
			return buf, start, startLine, end, true
		}
		// Continuation: drop the backslash and the next line's leading blanks.
		buf = buf[:len(buf)-1]
		skipWhite, appended, backslash = true, true, false
		if c == '\r' {
			r.skipLF = true
		}
	}
}

// splitKeyValue finds the key and value of a logical line as Properties.load0
// does: the key ends at the first unescaped '=', ':' or blank; blanks, at most
// one '=' or ':', and blanks again are skipped before the value.
func splitKeyValue(line []byte) (key, value []byte) {
	keyLen, valueStart := 0, len(line)
	hasSep, backslash := false, false
	for keyLen < len(line) {
		c := line[keyLen]
		if (c == '=' || c == ':') && !backslash {
			valueStart, hasSep = keyLen+1, true
			break
		}
		if (c == ' ' || c == '\t' || c == '\f') && !backslash {
			valueStart = keyLen + 1
			break
		}
		backslash = c == '\\' && !backslash
		keyLen++
	}
	for valueStart < len(line) {
		c := line[valueStart]
		if c != ' ' && c != '\t' && c != '\f' {
			if !hasSep && (c == '=' || c == ':') {
				hasSep = true
			} else {
				break
			}
		}
		valueStart++
	}
	return line[:keyLen], line[valueStart:]
}

// unescape decodes the escapes of one key or value and its characters from enc.
// \uXXXX escapes are UTF-16 code units: a high and a low surrogate in a row
// form one character, a lone surrogate becomes U+FFFD.
func unescape(seg []byte, enc Encoding) (string, error) {
	if bytes.IndexByte(seg, '\\') < 0 && (enc == UTF8 || isASCII(seg)) {
		return string(seg), nil
	}
	out := make([]byte, 0, len(seg))
	high := rune(-1) // a pending high surrogate from a \u escape
	flush := func() {
		if high >= 0 {
			out = utf8.AppendRune(out, utf8.RuneError)
			high = -1
		}
	}
	for i := 0; i < len(seg); {
		c := seg[i]
		if c == '\\' && i+1 < len(seg) {
			i++
			switch seg[i] {
			case 'u':
				if i+5 > len(seg) {
					return "", fmt.Errorf("malformed \\uxxxx encoding: %q", seg[i-1:])
				}
				unit, ok := hex4(seg[i+1 : i+5])
				if !ok {
					return "", fmt.Errorf("malformed \\uxxxx encoding: %q", seg[i-1:i+5])
				}
				i += 5
				switch {
				case utf16.IsSurrogate(unit) && unit < 0xDC00:
					flush()
					high = unit
				case utf16.IsSurrogate(unit):
					if high >= 0 {
						out = utf8.AppendRune(out, utf16.DecodeRune(high, unit))
						high = -1
					} else {
						out = utf8.AppendRune(out, utf8.RuneError)
					}
				default:
					flush()
					out = utf8.AppendRune(out, unit)
				}
				continue
			case 't', 'n', 'r', 'f':
				flush()
				out = append(out, controlEscape(seg[i]))
				i++
				continue
			}
			// Any other escaped character is the character itself.
		}
		flush()
		if enc == Latin1 {
			out = utf8.AppendRune(out, rune(seg[i]))
			i++
			continue
		}
		// UTF-8: copy the whole sequence starting at i.
		_, n := utf8.DecodeRune(seg[i:])
		out = append(out, seg[i:i+n]...)
		i += n
	}
	flush()
	return string(out), nil
}

func hex4(b []byte) (rune, bool) {
	var v rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			v = v<<4 + rune(c-'0')
		case 'a' <= c && c <= 'f':
			v = v<<4 + rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			v = v<<4 + rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// controlEscape returns the character that \t, \n, \r or \f stands for.
func controlEscape(c byte) byte {
	switch c {
	case 't':
		return '\t'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	}
	return '\f'
}
