package portfwd

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTime parses an HAProxy time value: an unsigned integer followed by an
// optional unit, one of us, ms, s, m, h or d; no unit means milliseconds.
func ParseTime(s string) (time.Duration, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid time value '%s': expected a number", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid time value '%s'", s)
	}
	units := map[string]time.Duration{"": time.Millisecond, "us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}
	u, ok := units[s[i:]]
	if !ok {
		return 0, fmt.Errorf("unexpected character '%c' in time value '%s'", s[i], s)
	}
	const maxMillis = 1<<31 - 1 // HAProxy keeps times as 32-bit milliseconds
	d := time.Duration(n) * u
	if n > maxMillis || d/time.Millisecond > maxMillis {
		return 0, fmt.Errorf("time value '%s' is too large (at most 2147483647 ms)", s)
	}
	return d, nil
}

// splitLine splits a configuration line into words: blanks separate words, #
// starts a comment, a backslash escapes the next character, and quotes group.
func splitLine(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' && i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
			} else {
				cur.WriteByte(c)
			}
		case c == '\\':
			if i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
			}
			inWord = true
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == '#':
			if inWord {
				words = append(words, cur.String())
			}
			return words, nil
		case c == ' ' || c == '\t' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unmatched quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
