package props

import (
	"fmt"
	"strings"
)

// PlaceholderError reports a ${...} placeholder that cannot be resolved.
type PlaceholderError struct {
	Key         string // the key whose value holds the placeholder
	Source      Source // where that value came from
	Placeholder string // the placeholder's name
	Reason      string // "not found" or "circular reference"
}

// Error returns "props: source: key: cannot resolve placeholder ${name}: reason".
func (e *PlaceholderError) Error() string {
	return fmt.Sprintf("props: %s: %s: cannot resolve placeholder ${%s}: %s", e.Source, e.Key, e.Placeholder, e.Reason)
}

// maxExpansion bounds the length of a resolved value, so that placeholders
// that double at each level cannot exhaust memory.
const maxExpansion = 1 << 20

// resolver expands Spring-style placeholders: ${name} and ${name:default}, with
// name looked up among the properties, then in the environment (as is, then in
// its relaxed upper-case form). Defaults and names may hold placeholders. A "${"
// without its "}" is kept as text.
type resolver struct {
	lookup func(key string) (Entry, bool)
	env    map[string]string
	cache  map[string]string // resolved values of keys, filled as they are resolved
}

// resolve expands the placeholders in e's value.
func (r *resolver) resolve(e Entry) (string, error) {
	return r.expand(e, e.Value, []string{e.Key})
}

func (r *resolver) expand(origin Entry, s string, stack []string) (string, error) {
	i := strings.Index(s, "${")
	if i < 0 {
		return s, nil
	}
	var b strings.Builder
	for i >= 0 {
		b.WriteString(s[:i])
		end := matchingBrace(s, i+2)
		if end < 0 {
			b.WriteString(s[i:])
			return b.String(), nil
		}
		inner := s[i+2 : end]
		name, def, hasDef := cutDefault(inner)
		name, err := r.expand(origin, name, stack)
		if err != nil {
			return "", err
		}
		value, found, err := r.value(origin, name, stack)
		if err != nil {
			return "", err
		}
		if !found {
			if !hasDef {
				return "", &PlaceholderError{Key: origin.Key, Source: origin.Source, Placeholder: name, Reason: "not found in the properties or the environment"}
			}
			if value, err = r.expand(origin, def, stack); err != nil {
				return "", err
			}
		}
		b.WriteString(value)
		if b.Len() > maxExpansion {
			return "", &PlaceholderError{Key: origin.Key, Source: origin.Source, Placeholder: name,
				Reason: "expands to more than 1 MiB"}
		}
		s = s[end+1:]
		i = strings.Index(s, "${")
	}
	b.WriteString(s)
	return b.String(), nil
}

// value looks name up and expands what it finds.
func (r *resolver) value(origin Entry, name string, stack []string) (string, bool, error) {
	if v, ok := r.cache[name]; ok {
		return v, true, nil
	}
	if e, ok := r.lookup(name); ok {
		for _, k := range stack {
			if k == name {
				return "", false, &PlaceholderError{Key: origin.Key, Source: origin.Source, Placeholder: name,
					Reason: "circular reference " + strings.Join(append(stack, name), " -> ")}
			}
		}
		v, err := r.expand(origin, e.Value, append(stack[:len(stack):len(stack)], name))
		if err != nil {
			return "", false, err
		}
		if r.cache == nil {
			r.cache = map[string]string{}
		}
		r.cache[name] = v
		return v, true, nil
	}
	if v, ok := r.env[name]; ok {
		return v, true, nil
	}
	for _, f := range envForms(name) {
		if v, ok := r.env[f]; ok {
			return v, true, nil
		}
	}
	return "", false, nil
}

// matchingBrace returns the index of the "}" closing a placeholder whose name
// starts at from, allowing nested placeholders, or -1.
func matchingBrace(s string, from int) int {
	depth := 0
	for i := from; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${"):
			depth++
			i++
		case s[i] == '}':
			if depth == 0 {
				return i
			}
			depth--
		}
	}
	return -1
}

// cutDefault splits "name:default" at the first ':' outside nested placeholders.
func cutDefault(s string) (name, def string, ok bool) {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${"):
			depth++
			i++
		case s[i] == '}':
			depth--
		case s[i] == ':' && depth == 0:
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
