package props

import (
	"strconv"
	"strings"
)

// envForms returns the environment variable names that bind key under Spring
// Boot's relaxed binding, most preferred first: upper case, '.' to '_', '-'
// removed (or, second, '-' to '_'), and a list index "[0]" to "_0_".
func envForms(key string) []string {
	form := func(dash string) string {
		var b strings.Builder
		for i := 0; i < len(key); i++ {
			switch c := key[i]; {
			case c == '.':
				b.WriteByte('_')
			case c == '-':
				b.WriteString(dash)
			case c == '[':
				b.WriteByte('_')
			case c == ']':
				b.WriteByte('_')
				if i+1 < len(key) && key[i+1] == '.' {
					i++ // "[0].x" binds as "_0_X"
				}
			case 'a' <= c && c <= 'z':
				b.WriteByte(c - 'a' + 'A')
			default:
				b.WriteByte(c)
			}
		}
		return b.String()
	}
	removed, underscored := form(""), form("_")
	if removed == underscored {
		return []string{removed}
	}
	return []string{removed, underscored}
}

// splitIndex splits "key[N]" into "key" and N.
func splitIndex(key string) (base string, index int, ok bool) {
	if !strings.HasSuffix(key, "]") {
		return key, 0, false
	}
	open := strings.LastIndexByte(key, '[')
	if open < 0 {
		return key, 0, false
	}
	n, err := strconv.Atoi(key[open+1 : len(key)-1])
	if err != nil || n < 0 {
		return key, 0, false
	}
	return key[:open], n, true
}

// envBinding is one environment variable that overrides a key.
type envBinding struct {
	name, value string
	rank        int // index of the matching form in envForms; lower wins
}

// bindEnvironment matches environ ("NAME=value" strings) against keys and the
// indexed forms of listKeys, returning the overrides by key. When several
// variables bind one key, the preferred form wins, then the later variable.
func bindEnvironment(environ []string, keys []string, listKeys []string) map[string]envBinding {
	forms := map[string]struct {
		key  string
		rank int
	}{}
	add := func(key string) {
		for rank, f := range envForms(key) {
			if prev, ok := forms[f]; !ok || rank < prev.rank {
				forms[f] = struct {
					key  string
					rank int
				}{key, rank}
			}
		}
	}
	for _, k := range keys {
		add(k)
	}
	listForms := map[string]string{}
	for _, k := range listKeys {
		for _, f := range envForms(k) {
			listForms[f] = k
		}
	}
	out := map[string]envBinding{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			continue
		}
		key, rank := "", 0
		if f, ok := forms[name]; ok {
			key, rank = f.key, f.rank
		} else if base, n, ok := envListIndex(name); ok {
			if k, ok := listForms[base]; ok {
				key = k + "[" + strconv.Itoa(n) + "]"
			}
		}
		if key == "" {
			continue
		}
		if prev, ok := out[key]; ok && prev.rank < rank {
			continue
		}
		out[key] = envBinding{name: name, value: value, rank: rank}
	}
	return out
}

// envListIndex splits "NAME_3_" or "NAME_3" into "NAME" and 3.
func envListIndex(name string) (string, int, bool) {
	s := strings.TrimSuffix(name, "_")
	i := strings.LastIndexByte(s, '_')
	if i <= 0 || i == len(s)-1 {
		return "", 0, false
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 0 || strings.ContainsAny(s[i+1:], "+-") {
		return "", 0, false
	}
	return s[:i], n, true
}
