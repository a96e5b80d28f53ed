package props

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// kv renders entries as "key=value@line" for compact comparisons.
func kv(es []Entry) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = fmt.Sprintf("%q=%q@%d", e.Key, e.Value, e.Source.Line)
	}
	return strings.Join(parts, " ")
}

func TestParseJavaRules(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty file", "", ""},
		{"plain", "a=b\n", `"a"="b"@1`},
		{"no final newline", "a=b", `"a"="b"@1`},
		{"colon separator", "a:b", `"a"="b"@1`},
		{"blank separator", "a b", `"a"="b"@1`},
		{"tab and form feed separators", "a\tb\nc\fd", `"a"="b"@1 "c"="d"@2`},
		{"blanks around separator", "a \t = \f b", `"a"="b"@1`},
		{"only one separator skipped", "k = = v", `"k"="= v"@1`},
		{"colon then equals", "k := v", `"k"="= v"@1`},
		{"empty key", "=v", `""="v"@1`},
		{"key only", "k", `"k"=""@1`},
		{"key with blank only", "k   ", `"k"=""@1`},
		{"trailing blanks kept", "k=v  \t", `"k"="v  \t"@1`},
		{"leading blanks of line dropped", "   \t k=v", `"k"="v"@1`},
		{"hash comment", "# c\nk=v", `"k"="v"@2`},
		{"bang comment", "! c\nk=v", `"k"="v"@2`},
		{"indented comment", "   # c\nk=v", `"k"="v"@2`},
		{"comment does not continue", "# c\\\nk=v", `"k"="v"@2`},
		{"hash inside value", "k=a#b", `"k"="a#b"@1`},
		{"continuation", "k=a\\\n   b", `"k"="ab"@1`},
		{"CRLF continuation", "k=a\\\r\n   b\r\nn=m", `"k"="ab"@1 "n"="m"@3`},
		{"CR continuation", "k=a\\\r   b\rn=m", `"k"="ab"@1 "n"="m"@3`},
		{"even backslashes do not continue", "k=a\\\\\nb=c", `"k"="a\\"@1 "b"="c"@2`},
		{"three backslashes continue", "k=a\\\\\\\nb", `"k"="a\\b"@1`},
		{"continuation line starting with hash", "k=a\\\n#b", `"k"="a#b"@1`},
		{"continuation into blank line ends it", "k=a\\\n\nn=m", `"k"="a"@1 "n"="m"@3`},
		{"backslash at end of file", "k=v\\", `"k"="v"@1`},
		{"backslash and newline at end of file", "k=v\\\n", `"k"="v"@1`},
		{"lone backslash", "\\", `""=""@1`},
		{"escaped separators in key", "a\\=b\\:c\\ d=v", `"a=b:c d"="v"@1`},
		{"control escapes", `k=\t\n\r\f`, `"k"="\t\n\r\f"@1`},
		{"other escapes are the character", `k=\a\b\\\"`, `"k"="ab\\\""@1`},
		{"unicode escape", `k=\u0041\u00e9\u20AC`, `"k"="Aé€"@1`},
		{"surrogate pair escape", `k=\uD83D\uDE00`, `"k"="😀"@1`},
		{"lone high surrogate", `k=\uD83Dx`, "\"k\"=\"\ufffdx\"@1"},
		{"lone low surrogate", `k=\uDE00`, "\"k\"=\"\ufffd\"@1"},
		{"duplicate keys: last wins", "k=1\nj=2\nk=3", `"j"="2"@2 "k"="3"@3`},
		{"UTF-8", "k=caf\xc3\xa9", `"k"="café"@1`},
		{"UTF-8 with BOM", "\xef\xbb\xbfk=v", `"k"="v"@1`},
		{"ISO-8859-1", "k=caf\xe9", `"k"="café"@1`},
		{"ISO-8859-1 keeps BOM bytes", "\xef\xbb\xbfk=v\xff", `"ï»¿k"="vÿ"@1`},
		{"escaped UTF-8 character", "k=\\\xc3\xa9", `"k"="é"@1`},
		{"line numbers with CRLF and blanks", "\r\n\r\na=1\r\n\r\nb=2", `"a"="1"@3 "b"="2"@5`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.in)
			if got := kv(f.Entries()); got != tt.want {
				t.Errorf("Parse(%q)\n got  %s\n want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		line int
	}{
		{`k=\u12`, 1},
		{"a=b\n\nk=\\u00G0", 3},
		{"a=b\nk=x\\\n  \\u12", 2},
		{`\uXYZW=v`, 1},
		{`k=\u`, 1},
	}
	for _, tt := range tests {
		_, err := Parse("conf/bitbucket.properties", []byte(tt.in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("Parse(%q) = %v, want *ParseError", tt.in, err)
			continue
		}
		if pe.Line != tt.line || pe.File != "conf/bitbucket.properties" {
			t.Errorf("Parse(%q): error at %s:%d, want line %d", tt.in, pe.File, pe.Line, tt.line)
		}
		if want := fmt.Sprintf("conf/bitbucket.properties:%d:", tt.line); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestEncodingDetection(t *testing.T) {
	for in, want := range map[string]Encoding{"": UTF8, "k=v": UTF8, "k=\xc3\xa9": UTF8, "k=\xe9": Latin1, "\xef\xbb\xbfk=v": UTF8} {
		if got := mustParse(t, in).Encoding(); got != want {
			t.Errorf("Encoding(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestEscapeMatchesStore(t *testing.T) {
	// Expected strings are what java.util.Properties.store writes.
	tests := []struct{ key, value, line string }{
		{"a", "b", `a=b`},
		{"a b", " v w ", `a\ b=\ v w `},
		{"k=:#!", "=:#!", `k\=\:\#\!=\=\:\#\!`},
		{"k", "\t\n\r\f", `k=\t\n\r\f`},
		{"k", "café€😀\x01", `k=caf\u00E9\u20AC\uD83D\uDE00\u0001`},
		{"back\\slash", "c:\\dir", `back\\slash=c\:\\dir`},
	}
	for _, tt := range tests {
		if got := EscapeKey(tt.key) + "=" + EscapeValue(tt.value); got != tt.line {
			t.Errorf("escape(%q, %q) = %s, want %s", tt.key, tt.value, got, tt.line)
		}
		f := mustParse(t, tt.line)
		if e, ok := f.Lookup(tt.key); !ok || e.Value != tt.value {
			t.Errorf("reading %s back gave %v", tt.line, f.Entries())
		}
	}
}
