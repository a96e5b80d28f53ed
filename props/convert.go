package props

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config converts the known keys into a typed configuration with Bitbucket's
// defaults, resolving placeholders first. Every value that cannot be resolved
// or converted is reported, as Problems naming key, source and fix; the
// returned Config is complete even then, with defaults in place of the bad
// values. Call Config.Validate for the checks between keys.
func (p *Properties) Config() (*Config, error) {
	keys := KnownKeys()
	known := make(map[string]bool, len(keys))
	lists := make(map[string]bool)
	for _, k := range keys {
		known[k.Key] = true
		if k.field.isList {
			lists[k.Key] = true
		}
	}
	c := &Config{sources: map[string]Source{}}
	var problems Problems
	res := p.resolver()
	resolved := make(map[string]string, len(keys))
	indexed := map[string][]indexedValue{}
	for _, k := range p.sortedKeys() {
		e := p.entries[k]
		base, n, isIndexed := splitIndex(k)
		if !known[base] || isIndexed && !lists[base] {
			c.unknown = append(c.unknown, e)
			continue
		}
		v, err := res.resolve(e)
		if err != nil {
			problems = append(problems, placeholderProblem(err, e))
			continue
		}
		if isIndexed {
			indexed[base] = append(indexed[base], indexedValue{n, v, e.Source})
			continue
		}
		c.sources[k] = e.Source
		resolved[k] = v
	}
	for base, vs := range indexed {
		// As in Spring Boot, a list comes from the most important source that
		// holds any of its elements (the environment, then the file); within a
		// source, indexed entries (key[0], key[1], ...) replace the comma form.
		fromEnv := slices.DeleteFunc(slices.Clone(vs), func(v indexedValue) bool { return v.source.Env == "" })
		switch {
		case len(fromEnv) > 0:
			vs = fromEnv
		case c.sources[base].Env != "":
			continue
		}
		slices.SortFunc(vs, func(a, b indexedValue) int { return a.index - b.index })
		items := make([]string, len(vs))
		for i, v := range vs {
			items[i] = strings.ReplaceAll(v.value, ",", "\x00")
		}
		resolved[base] = strings.Join(items, ",")
		c.sources[base] = vs[0].source
	}
	cv := converter{c: c}
	schemeSet := false
	for i := range keys {
		k := &keys[i]
		v, ok := resolved[k.Key]
		if ok && strings.TrimSpace(v) != "" {
			schemeSet = schemeSet || k.Key == KeyServerScheme
		} else {
			// Unset and empty values take the default; an empty value keeps its
			// source so that problems about it name the line that emptied it.
			v = k.Default
		}
		k.field.set(&cv, k, v)
	}
	if c.Server.SSL.Enabled && !schemeSet {
		c.Server.Scheme = "https"
	}
	problems = append(problems, cv.problems...)
	sortProblems(problems)
	if len(problems) > 0 {
		return c, problems
	}
	return c, nil
}

type indexedValue struct {
	index  int
	value  string
	source Source
}

func placeholderProblem(err error, e Entry) Problem {
	var pe *PlaceholderError
	msg := err.Error()
	if errors.As(err, &pe) {
		msg = fmt.Sprintf("cannot resolve placeholder ${%s}: %s", pe.Placeholder, pe.Reason)
	}
	return Problem{Severity: Error, Key: e.Key, Source: e.Source, Message: msg,
		Fix: "define the property or environment variable it names, or give a default as ${name:default}"}
}

// field is how a key's resolved value becomes its Config field; the
// constructors below make one for each kind of value.
type field struct {
	// isList marks a list: comma-separated, or indexed as key[0], key[1], ...
	isList bool
	// set converts v, the resolved value or the key's default, and stores it
	// in the field of cv's Config. A value that cannot be converted is
	// reported through cv, and the field gets the default's value.
	set func(cv *converter, k *KeyInfo, v string)
	// check is the rule every value of this kind follows, nil for none; see
	// KeyInfo.check.
	check func(c *Config, k *KeyInfo) (msg, fix string)
}

// text is a string field, normalised by norm unless it is nil.
func text(f func(*Config) *string, norm func(string) string) field {
	return field{set: func(cv *converter, _ *KeyInfo, v string) {
		if norm != nil {
			v = norm(v)
		}
		*f(cv.c) = v
	}}
}

// port is a port number. A port without a default may be 0, which means it
// is not set (as server.proxy-port in Tomcat); any other must be from 1 to
// 65535.
func port(f func(*Config) *int) field {
	return field{
		set: func(cv *converter, k *KeyInfo, v string) { *f(cv.c) = cv.port(k, v) },
		check: func(c *Config, k *KeyInfo) (string, string) {
			if n := *f(c); (n != 0 || k.Default != "") && (n < 1 || n > 65535) {
				return fmt.Sprintf("port %d is out of range", n), "use a port from 1 to 65535"
			}
			return "", ""
		},
	}
}

// boolean is true or false, in any case.
func boolean(f func(*Config) *bool) field {
	return field{set: func(cv *converter, k *KeyInfo, v string) { *f(cv.c) = cv.bool(k, v) }}
}

// duration is a duration; see ParseDuration.
func duration(f func(*Config) *time.Duration) field {
	return field{set: func(cv *converter, k *KeyInfo, v string) { *f(cv.c) = cv.duration(k, v) }}
}

// absURL is an absolute URL with a host, or empty.
func absURL(f func(*Config) *string) field {
	return field{set: func(cv *converter, k *KeyInfo, v string) { *f(cv.c) = cv.url(k, v) }}
}

// size is a number of bytes, with an optional suffix k, m or g (powers of
// 1024, either case), or -1.
func size(f func(*Config) *int64) field {
	return field{set: func(cv *converter, k *KeyInfo, v string) { *f(cv.c) = cv.size(k, v) }}
}

// integer is a whole number.
func integer(f func(*Config) *int) field {
	return field{set: func(cv *converter, k *KeyInfo, v string) { *f(cv.c) = cv.integer(k, v) }}
}

// list is a list of words.
func list(f func(*Config) *[]string) field {
	return field{isList: true, set: func(cv *converter, _ *KeyInfo, v string) { *f(cv.c) = splitList(v) }}
}

// networks is a list of networks in CIDR notation; a bare address is a
// network of one.
func networks(f func(*Config) *[]netip.Prefix) field {
	return field{isList: true, set: func(cv *converter, k *KeyInfo, v string) { *f(cv.c) = cv.cidrs(k, v) }}
}

// oneOf is one of choices, in any case.
func oneOf[T ~string](f func(*Config) *T, choices ...T) field {
	words := make([]string, len(choices))
	for i, c := range choices {
		words[i] = string(c)
	}
	return parsedOneOf(f, func(v string) (T, error) {
		if slices.Contains(words, v) {
			return T(v), nil
		}
		return "", errors.New("props: not a choice")
	}, words...)
}

// parsedOneOf is one of the words choices, in any case, that parse turns into
// the field's value.
func parsedOneOf[T any](f func(*Config) *T, parse func(string) (T, error), choices ...string) field {
	return field{set: func(cv *converter, k *KeyInfo, v string) {
		v = strings.ToLower(strings.TrimSpace(v))
		t, err := parse(v)
		if err != nil {
			cv.fail(k, v, "not one of "+strings.Join(choices, ", "), "use one of "+strings.Join(choices, " | "))
			t, _ = parse(k.Default)
		}
		*f(cv.c) = t
	}}
}

// converter turns resolved strings into typed values, recording a problem
// and keeping the default for each value it cannot convert.
type converter struct {
	c        *Config
	problems Problems
}

func (cv *converter) fail(k *KeyInfo, value, msg, fix string) {
	cv.problems = append(cv.problems, Problem{Severity: Error, Key: k.Key, Source: cv.c.sources[k.Key],
		Message: fmt.Sprintf("%s: %q", msg, value), Fix: fix})
}

// port converts a port; the range is checked by Validate. An unset key is 0
// unless it has a default.
func (cv *converter) port(k *KeyInfo, v string) int {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		cv.fail(k, v, "not a port number", "use a whole number from 1 to 65535")
		n, _ = strconv.Atoi(k.Default)
	}
	return n
}

// size converts a byte count such as 1073741824, 512m or 1g, or -1, which a
// key may take to mean no limit (or, for a cache, none).
func (cv *converter) size(k *KeyInfo, v string) int64 {
	if strings.TrimSpace(v) == "-1" {
		return -1
	}
	n, err := ParseSize(v)
	if err != nil {
		cv.fail(k, v, "not a size", "use a number of bytes, or a number with k, m or g, such as 512m")
		n, _ = ParseSize(k.Default)
	}
	return n
}

// integer converts a whole number; unset is 0.
func (cv *converter) integer(k *KeyInfo, v string) int {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		cv.fail(k, v, "not a whole number", "use a whole number such as 4")
		n, _ = strconv.Atoi(k.Default)
	}
	return n
}

// ParseSize parses a byte count: a whole number, optionally followed by k, m
// or g (KiB, MiB, GiB; either case). Empty is 0; negative values are refused.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("props: invalid size %q", s)
	}
	return n * mult, nil
}

// bool accepts true or false in any case, and nothing else.
func (cv *converter) bool(k *KeyInfo, v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true
	case "false", "":
		return false
	}
	cv.fail(k, v, "not a boolean", "use true or false")
	return k.Default == "true"
}

// duration converts a duration; see ParseDuration.
func (cv *converter) duration(k *KeyInfo, v string) time.Duration {
	d, err := ParseDuration(v)
	if err != nil {
		cv.fail(k, v, "not a duration", "use a number with a unit such as 180s, 3m or 1h (a bare number is seconds)")
		d, _ = ParseDuration(k.Default)
	}
	return d
}

// url checks that v is an absolute URL with a host.
func (cv *converter) url(k *KeyInfo, v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		cv.fail(k, v, "not an absolute URL", "write the whole URL, such as https://bitbucket.example.com")
		return ""
	}
	return v
}

// cidrs converts a list of networks; a bare address is a network of one.
func (cv *converter) cidrs(k *KeyInfo, v string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range splitList(v) {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		cv.fail(k, s, "not a network in CIDR notation", "use networks such as 10.0.0.0/8 or 192.0.2.7, separated by commas")
	}
	return out
}

// splitList splits a comma-separated value, trimming items and dropping empty
// ones. Items of indexed keys arrive with their commas as NUL bytes.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(strings.ReplaceAll(s, "\x00", ",")); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// contextPath normalises a context path to "" or "/path" without a trailing slash.
func contextPath(v string) string {
	v = strings.Trim(strings.TrimSpace(v), "/")
	if v == "" {
		return ""
	}
	return "/" + v
}

// ParseDuration parses a duration as Spring Boot does for a property whose
// unit is seconds: a bare number is seconds; a number with a unit ns, us, ms,
// s, m, h or d (such as 180s, 3m, 1h); or ISO-8601 such as PT3M. Go durations
// such as 1m30s are accepted too.
func ParseDuration(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	if s == "" {
		return 0, errors.New("props: empty duration")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if up := strings.ToUpper(s); strings.HasPrefix(up, "P") && up != "P" && !strings.HasSuffix(up, "T") {
		return parseISODuration(up, v)
	}
	if strings.HasSuffix(s, "d") {
		if n, err := strconv.ParseInt(strings.TrimSuffix(s, "d"), 10, 64); err == nil {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("props: invalid duration %q", v)
	}
	return d, nil
}

// parseISODuration parses the days-to-seconds subset of ISO-8601 (PnDTnHnMnS).
func parseISODuration(up, v string) (time.Duration, error) {
	iso := regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)
	if m := iso.FindStringSubmatch(up); m != nil {
		var d time.Duration
		for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
			if m[i+1] != "" {
				n, _ := strconv.ParseInt(m[i+1], 10, 64)
				d += time.Duration(n) * unit
			}
		}
		if m[4] != "" {
			f, _ := strconv.ParseFloat(m[4], 64)
			d += time.Duration(f * float64(time.Second))
		}
		return d, nil
	}
	return 0, fmt.Errorf("props: invalid duration %q", v)
}
