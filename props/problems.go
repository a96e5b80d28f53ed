package props

import (
	"fmt"
	"strings"
)

// Severity tells an error, which stops a node from starting, from a warning.
type Severity int

const (
	// Error is a problem the node cannot start with.
	Error Severity = iota
	// Warning is a problem the node starts with, such as an unknown key.
	Warning
)

// String returns "error" or "warning".
func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Problem is one thing wrong with the configuration.
type Problem struct {
	Severity Severity
	Key      string
	Source   Source // where the offending value came from; zero for a default
	Message  string // what is wrong
	Fix      string // what to do about it
}

// String returns "source: severity: key: message (fix)".
func (p Problem) String() string {
	s := fmt.Sprintf("%s: %s: %s: %s", p.Source, p.Severity, p.Key, p.Message)
	if p.Fix != "" {
		s += "; fix: " + p.Fix
	}
	return s
}

// Problems is every problem found, in a stable order. As an error it lists
// them one a line.
type Problems []Problem

// Error lists the problems one a line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return "props: " + strings.Join(lines, "\n")
}

// Errors returns the problems of severity Error.
func (ps Problems) Errors() Problems { return ps.filter(Error) }

// Warnings returns the problems of severity Warning.
func (ps Problems) Warnings() Problems { return ps.filter(Warning) }

func (ps Problems) filter(s Severity) Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == s {
			out = append(out, p)
		}
	}
	return out
}

// Err returns the errors among ps as an error, or nil when there are none.
func (ps Problems) Err() error {
	if errs := ps.Errors(); len(errs) > 0 {
		return errs
	}
	return nil
}
