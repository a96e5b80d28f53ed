package props

import (
	"strconv"
	"strings"
)

// SuggestKey returns the known key closest to key when key looks like a
// misspelling of it (a few typed, missing, extra or swapped characters, or a
// different case), else "".
func SuggestKey(key string) string {
	base, n, indexed := splitIndex(key)
	lower := strings.ToLower(base)
	best, bestDist := "", -1
	for _, k := range KnownKeys() {
		d := editDistance(lower, strings.ToLower(k.Key))
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

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent bytes each cost 1.
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
