package props

import "strconv"

// Source says where a value came from: a line of a properties file, an
// environment variable, or the built-in default.
type Source struct {
	// File is the properties file's path; empty for environment values and defaults.
	File string
	// Line is the 1-based line of File on which the entry's logical line starts.
	Line int
	// Env is the environment variable's name for environment overrides.
	Env string
}

// String returns "file:line", "env NAME", or "default".
func (s Source) String() string {
	switch {
	case s.Env != "":
		return "env " + s.Env
	case s.File != "":
		return s.File + ":" + strconv.Itoa(s.Line)
	default:
		return "default"
	}
}

// IsDefault reports whether s is the zero Source, the one defaults carry.
func (s Source) IsDefault() bool { return s == Source{} }

// Entry is one key and its raw value (escapes decoded, placeholders not resolved)
// together with where it came from.
type Entry struct {
	Key    string
	Value  string
	Source Source
}
