package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// InteropEnv is the environment variable that, set to "require", turns skips for a
// missing system program into failures.
const InteropEnv = "GITFLEET_INTEROP"

// Required reports whether missing system programs must fail tests instead of
// skipping them.
func Required() bool { return os.Getenv(InteropEnv) == "require" }

// Require returns the path of program, or skips the test (fails it under
// GITFLEET_INTEROP=require) when the program is not installed. Programs such as sshd
// that live in sbin are looked up there too.
func Require(t testing.TB, program string) string {
	t.Helper()
	path, err := LookPath(program)
	if err == nil {
		return path
	}
	if Required() {
		t.Fatalf("%s is required (%s=require) but not installed: %v", program, InteropEnv, err)
	}
	t.Skipf("%s is not installed; skipping (set %s=require to make this a failure)", program, InteropEnv)
	return ""
}

// LookPath finds program in PATH, then in /usr/sbin and /sbin.
func LookPath(program string) (string, error) {
	path, err := exec.LookPath(program)
	if err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := dir + "/" + program
		if st, serr := os.Stat(p); serr == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", err
}
