package props

import (
	"strconv"
	"strings"
)

// envForms returns the environment variable names that bind key under Spring
// Boot's relaxed binding, most preferred first: upper case, '.' to '_', '-'
// removed (or, second, '-' to '_'), and a list index "[0]" to "_0_".
func envForms(key string) []string {
	removed := string(appendEnvForm(nil, key, false))
	underscored := string(appendEnvForm(nil, key, true))
	if removed == underscored {
		return []string{removed}
	}
	return []string{removed, underscored}
}

// appendEnvForm appends key's environment form to buf, with '-' removed or,
// when dashToUnderscore, turned into '_'.
func appendEnvForm(buf []byte, key string, dashToUnderscore bool) []byte {
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c == '.' || c == '[':
			buf = append(buf, '_')
		case c == '-':
			if dashToUnderscore {
				buf = append(buf, '_')
			}
		case c == ']':
			buf = append(buf, '_')
			if i+1 < len(key) && key[i+1] == '.' {
				i++ // "[0].x" binds as "_0_X"
			}
		case 'a' <= c && c <= 'z':
			buf = append(buf, c-'a'+'A')
		default:
			buf = append(buf, c)
		}
	}
	return buf
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
	rank        int // 0 for the dash-removed form, 1 for the dash-to-underscore form
	order       int // position in environ
}

// bindEnvironment matches environ ("NAME=value" strings) against keys and the
// indexed forms of listKeys, returning the overrides by key. When several
// variables bind one key, the preferred form wins, then the later variable.
func bindEnvironment(environ []string, keys []string, listKeys []string) map[string]envBinding {
	type envVar struct {
		value string
		order int
	}
	vars := make(map[string]envVar, len(environ))
	for i, kv := range environ {
		if name, value, ok := strings.Cut(kv, "="); ok && name != "" {
			vars[name] = envVar{value, i}
		}
	}
	out := map[string]envBinding{}
	bind := func(key, name string, v envVar, rank int) {
		if prev, ok := out[key]; ok && (prev.rank < rank || prev.rank == rank && prev.order > v.order) {
			return
		}
		out[key] = envBinding{name: name, value: v.value, rank: rank, order: v.order}
	}
	if len(vars) == 0 {
		return out
	}
	var buf []byte
	for _, key := range keys {
		for rank, dash := range []bool{false, true} {
			buf = appendEnvForm(buf[:0], key, dash)
			if v, ok := vars[string(buf)]; ok {
				bind(key, string(buf), v, rank)
			}
		}
	}
	listForms := map[string]string{}
	for _, k := range listKeys {
		for _, f := range envForms(k) {
			listForms[f] = k
		}
	}
	for name, v := range vars {
		if base, n, ok := envListIndex(name); ok {
			if k, ok := listForms[base]; ok {
				bind(k+"["+strconv.Itoa(n)+"]", name, v, 0)
			}
		}
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
