package testutil

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// LeakGrace is how long CheckGoroutines waits for goroutines to end by themselves
// before it calls them leaked.
const LeakGrace = 10 * time.Second

// ignoredStacks are goroutines that belong to the runtime or the test framework.
var ignoredStacks = []string{
	"testing.(*M).",
	"testing.RunTests",
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	"runtime/trace.",
	"testing.(*F).Fuzz",
	"testing.runFuzzing",
	"internal/fuzz.",
}

// VerifyMain runs the tests of m and exits; when they pass but goroutines started by
// them are still running after LeakGrace, it prints their stacks and exits 1. Use it
// as the body of TestMain in packages that run servers:
//
//	func TestMain(m *testing.M) { testutil.VerifyMain(m) }
func VerifyMain(m *testing.M) {
	os.Exit(RunVerified(m))
}

// RunVerified is VerifyMain without the exit: it runs the tests, checks for
// leaked goroutines, and returns the exit code, for a TestMain that has cleaning
// up to do before it exits.
func RunVerified(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		if leaked := WaitGoroutines(LeakGrace); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "goroutine leak: %d goroutines still running after the tests:\n\n%s\n",
				len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	return code
}

// CheckNoLeaks registers a cleanup that fails t when goroutines started during the
// test are still running LeakGrace after it ends. Do not use it in parallel tests.
func CheckNoLeaks(t testing.TB) {
	t.Helper()
	before := map[string]bool{}
	for _, g := range goroutines() {
		before[goroutineID(g)] = true
	}
	t.Cleanup(func() {
		deadline := time.Now().Add(LeakGrace)
		for {
			var leaked []string
			for _, g := range goroutines() {
				if !before[goroutineID(g)] {
					leaked = append(leaked, g)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutine leak: %d goroutines still running:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// WaitGoroutines waits up to grace for every goroutine but the caller and the
// runtime's and test framework's own to end, and returns the stacks of those still
// running.
func WaitGoroutines(grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		gs := goroutines()
		if len(gs) == 0 || time.Now().After(deadline) {
			return gs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goroutines returns the stacks of all goroutines except the caller's and ignored
// ones.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	blocks := strings.Split(strings.TrimSpace(string(buf)), "\n\n")
	var out []string
	for i, b := range blocks {
		if i == 0 { // the calling goroutine is listed first
			continue
		}
		if ignored(b) {
			continue
		}
		out = append(out, b)
	}
	return out
}

func ignored(stack string) bool {
	for _, s := range ignoredStacks {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}

func goroutineID(stack string) string {
	head, _, _ := strings.Cut(stack, " [")
	return head
}
