package props

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"0", 0, true}, {"4096", 4096, true}, {" 512m ", 512 << 20, true},
		{"1g", 1 << 30, true}, {"1G", 1 << 30, true}, {"64k", 64 << 10, true}, {"2 g", 2 << 30, true},
		{"-1", 0, false}, {"1t", 0, false}, {"g", 0, false}, {"1.5g", 0, false}, {"99999999999g", 0, false},
	} {
		got, err := ParseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}

// FuzzParseSize checks that ParseSize never panics, never returns a negative
// size, and reads a bare number as bytes.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1g", "512m", "64k", "4096", "", "-1", "1.5g", "9223372036854775807", "8589934591g"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if n < 0 || err != nil && n != 0 {
			t.Fatalf("ParseSize(%q) = %d, %v", s, n, err)
		}
		if v, perr := strconv.ParseInt(strings.TrimSpace(s), 10, 64); perr == nil && v >= 0 && v <= 1<<62 {
			if err != nil || n != v {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d bytes", s, n, err, v)
			}
		}
	})
}
