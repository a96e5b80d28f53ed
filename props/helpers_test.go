package props

import (
	"errors"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }

func errorsAs[T any](err error, target *T) bool { return errors.As(err, target) }

// mustParse parses in as the file "t.properties" or fails the test.
func mustParse(t *testing.T, in string) *File {
	t.Helper()
	f, err := Parse("t.properties", []byte(in))
	if err != nil {
		t.Fatalf("Parse(%q): %v", in, err)
	}
	return f
}
