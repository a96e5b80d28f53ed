package mirror_test

import (
	"fmt"
	"strings"

	"github.com/gitfleet/gitfleet/mirror"
)

// The text a mirror signs for a long poll of the change feed with an empty body.
func ExampleSigningString() {
	s := mirror.SigningString("GET", "/rest/mirroring/1.0/events?after=41&wait=30s", 1700000000,
		"8c4f1e0b9a7d6c5e4f3a2b1c0d9e8f7a", nil)
	for _, line := range strings.Split(string(s), "\n") {
		fmt.Println(line)
	}
	// Output:
	// GET
	// /rest/mirroring/1.0/events?after=41&wait=30s
	// 1700000000
	// 8c4f1e0b9a7d6c5e4f3a2b1c0d9e8f7a
	// e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
}
