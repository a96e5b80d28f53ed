package portfwd

import (
	"os"
	"strings"
	"testing"
)

// openFDs counts the process's open file descriptors other than pipes: Go's
// splice keeps pipes in a sync.Pool (the echo server here splices too), a cache
// that the garbage collector trims when it likes, so they would make the count
// wander without any leak.
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "pipe:") {
			continue
		}
		n++
	}
	return n
}
