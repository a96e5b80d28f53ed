package props

import (
	"strconv"
	"strings"

	"github.com/gitfleet/gitfleet/internal/textdist"
)

// SuggestKey returns the known key closest to key when key looks like a
// misspelling of it (a few typed, missing, extra or swapped characters, or a
// different case), else "".
func SuggestKey(key string) string {
	base, n, indexed := splitIndex(key)
	lower := strings.ToLower(base)
	best, bestDist := "", -1
	for _, k := range KnownKeys() {
		d := textdist.Distance(lower, strings.ToLower(k.Key))
		limit := min(3, max(1, len(k.Key)/8))
		if d <= limit && (bestDist < 0 || d < bestDist) {
			best, bestDist = k.Key, d
		}
	}
	if best == "" || best == base {
		return ""
	}
	if indexed {
		return best + "[" + strconv.Itoa(n) + "]"
	}
	return best
}
