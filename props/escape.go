package props

import (
	"strings"
	"unicode/utf16"
)

// EscapeKey escapes a key as java.util.Properties.store does: blanks, '=', ':',
// '#', '!' and backslashes are escaped, \t \n \r \f use their letters, and every
// other character outside printable ASCII is written as \uXXXX (UTF-16 units).
func EscapeKey(key string) string { return escape(key, true) }

// EscapeValue escapes a value as Properties.store does: like EscapeKey, except
// that only a leading blank is escaped.
func EscapeValue(value string) string { return escape(value, false) }

func escape(s string, escapeSpace bool) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i, r := range s {
		switch {
		case r > '=' && r < 0x7F:
			if r == '\\' {
				b.WriteString(`\\`)
			} else {
				b.WriteRune(r)
			}
		case r == ' ':
			if i == 0 || escapeSpace {
				b.WriteByte('\\')
			}
			b.WriteByte(' ')
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '=', r == ':', r == '#', r == '!':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r > 0x7E:
			if r1, r2 := utf16.EncodeRune(r); r1 != '\uFFFD' {
				writeUnit(&b, r1)
				writeUnit(&b, r2)
			} else {
				writeUnit(&b, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func writeUnit(b *strings.Builder, u rune) {
	const digits = "0123456789ABCDEF"
	b.WriteString(`\u`)
	b.WriteByte(digits[u>>12&0xF])
	b.WriteByte(digits[u>>8&0xF])
	b.WriteByte(digits[u>>4&0xF])
	b.WriteByte(digits[u&0xF])
}
