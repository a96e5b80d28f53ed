package gitexec

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	cases := []struct {
		in   string
		want Version
		err  bool
	}{
		{"git version 2.39.5\n", Version{2, 39, 5}, false},
		{"git version 2.31.0", Version{2, 31, 0}, false},
		{"git version 2.45.1.windows.1", Version{2, 45, 1}, false},
		{"git version 2.50.0-rc1", Version{2, 50, 0}, false},
		{"git version 2.30", Version{2, 30, 0}, false},
		{"hg version 2", Version{}, true},
		{"git version x.y", Version{}, true},
		{"", Version{}, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseVersion(c.in)
			if (err != nil) != c.err {
				t.Fatalf("ParseVersion(%q) error = %v, want error %v", c.in, err, c.err)
			}
			if got != c.want {
				t.Fatalf("ParseVersion(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestRequire(t *testing.T) {
	err := Require(Version{2, 30, 9})
	if !errors.Is(err, ErrTooOld) {
		t.Fatalf("Require(2.30.9) = %v, want ErrTooOld", err)
	}
	if !strings.Contains(err.Error(), "git >= 2.31 is required, found 2.30.9") {
		t.Fatalf("message %q does not say what is required and found", err)
	}
	for _, v := range []Version{{2, 31, 0}, {2, 39, 5}, {3, 0, 0}} {
		if err := Require(v); err != nil {
			t.Errorf("Require(%v) = %v, want nil", v, err)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	v, err := CheckVersion(context.Background())
	if err != nil {
		t.Fatalf("CheckVersion: %v", err)
	}
	if v.Major < 2 {
		t.Fatalf("implausible version %v", v)
	}
}

func TestEnvIsSanitised(t *testing.T) {
	t.Setenv("GIT_DIR", "/tmp/evil")
	t.Setenv("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='/tmp/evil'")
	env := Env("GIT_PROTOCOL=version=2")
	for _, kv := range env {
		if strings.HasPrefix(kv, "GIT_DIR=") || strings.HasPrefix(kv, "GIT_CONFIG_PARAMETERS=") {
			t.Fatalf("inherited %q", kv)
		}
	}
	if env[len(env)-1] != "GIT_PROTOCOL=version=2" {
		t.Fatalf("extra env not last: %v", env)
	}
	// git itself must not see the user's configuration.
	t.Setenv("HOME", t.TempDir())
	if err := os.WriteFile(os.Getenv("HOME")+"/.gitconfig", []byte("[user]\n\tname = leaked\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := Run(context.Background(), "", nil, "config", "--get", "user.name")
	if err == nil {
		t.Fatalf("git saw user configuration: %q", out)
	}
	var ge *Error
	if !errors.As(err, &ge) || ge.ExitCode() != 1 {
		t.Fatalf("want *Error with exit 1 (key not found), got %v", err)
	}
}

func TestRunErrorCarriesStderr(t *testing.T) {
	_, err := Run(context.Background(), t.TempDir(), nil, "rev-parse", "--verify", "no-such-ref")
	var ge *Error
	if !errors.As(err, &ge) {
		t.Fatalf("want *Error, got %v", err)
	}
	if ge.ExitCode() == 0 || !strings.Contains(ge.Error(), "fatal") {
		t.Fatalf("error lacks exit code or stderr: %v (code %d)", ge, ge.ExitCode())
	}
}
