package portfwd

import (
	"errors"
	"strings"

	"github.com/gitfleet/gitfleet/internal/textdist"
)

// ErrConfig is matched by every error ParseConfig returns for a bad
// configuration (errors.Is(err, ErrConfig)).
var ErrConfig = errors.New("portfwd: invalid configuration")

// Diagnostic is one problem found in a configuration.
type Diagnostic struct {
	// Pos is where the problem is; Pos.Line is zero for a Config built in Go.
	Pos Position
	// Msg describes the problem.
	Msg string
}

// String returns "file:line: message".
func (d Diagnostic) String() string {
	if p := d.Pos.String(); p != "" {
		return p + ": " + d.Msg
	}
	return d.Msg
}

// ConfigError lists every error found in a configuration.
type ConfigError struct {
	Diagnostics []Diagnostic
}

// Error returns the diagnostics one per line.
func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Diagnostics))
	for i, d := range e.Diagnostics {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// suggest returns the candidate closest to word when it is a near miss (an
// edit distance of at most a third of the word, and at least 1), or "".
func suggest(word string, candidates []string) string {
	best, bestDist := "", len(word)/3+1
	if bestDist < 2 {
		bestDist = 2
	}
	for _, c := range candidates {
		if d := textdist.Distance(word, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}
