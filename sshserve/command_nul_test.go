package sshserve

import (
	"errors"
	"testing"
)

// TestControlCharacterInCommandName: a control character in the command's name
// ("whoami\x00id", a probe for command injection) is an unknown command, and
// one inside a repository argument a bad path.
func TestControlCharacterInCommandName(t *testing.T) {
	for _, c := range []struct {
		line string
		want error
	}{
		{"whoami\x00id", ErrUnknownCommand},
		{"whoami\nid", ErrUnknownCommand},
		{"git-upload-pack\x00 'PROJ/r.git'", ErrUnknownCommand},
		{"git-upload-pack 'PROJ/r.git\x00'", ErrBadQuoting},
		{"git-upload-pack 'PROJ/r.git'\n", ErrBadQuoting},
	} {
		if _, err := ParseCommand(c.line); !errors.Is(err, c.want) {
			t.Errorf("ParseCommand(%q) = %v, want %v", c.line, err, c.want)
		}
	}
}
