package testutil

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// LeakGrace is how long the leak checks wait for goroutines to end by themselves
// before they call them leaked.
const LeakGrace = 10 * time.Second

// The checks are built on go.uber.org/goleak, which parses every goroutine's
// stack and by itself ignores the test framework's goroutines (testing.RunTests,
// (*T).Run, (*T).Parallel, runFuzzing, runFuzzTests waiting on a channel), the
// os/signal goroutines (signal_recv, loop, runtime.ensureSigM) and the
// execution tracer's reader (runtime.ReadTrace). Two things it does not do in the
// version this module uses (v1.3.0) are added here:
//
//   - Its wait is fixed (20 tries, 0.4 to 0.7 seconds in all) and the options to
//     change it are unexported, so the checks call goleak.Find again until
//     LeakGrace has passed: a server that takes a few seconds to drain is not
//     called leaked.
//   - It matches whole function names only, so the test framework's functions
//     that the earlier checker ignored by prefix are named here one by one
//     (ignoredFunctions). With Go 1.26 none of them is left running once the
//     tests have returned, in a normal run, under -trace or in a fuzzing
//     coordinator and its workers; they stay listed so that a later Go release
//     that leaves one running is not reported as a leak of ours.

// ignoredFunctions are functions of the runtime and the test framework whose
// goroutines are never a test's leak, wherever they appear in a stack.
var ignoredFunctions = []string{
	"testing.(*M).Run",
	"testing.(*M).startAlarm",
	"testing.RunTests",
	"testing.runTests",
	"testing.(*F).Fuzz",
	"testing.runFuzzing",
	"testing.runFuzzTests",
	"internal/fuzz.CoordinateFuzzing",
	"internal/fuzz.RunFuzzWorker",
	"os/signal.signal_recv",
	"os/signal.loop",
	"runtime.ensureSigM",
	"runtime/trace.Start",
	"runtime/trace.Start.func1",
}

// leakOptions returns the goleak options every check uses, then extra.
func leakOptions(extra ...goleak.Option) []goleak.Option {
	opts := make([]goleak.Option, 0, len(ignoredFunctions)+len(extra))
	for _, f := range ignoredFunctions {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	return append(opts, extra...)
}

// findLeaks reports the goroutines (other than the caller and the ignored ones)
// still running after grace, as goleak's error; nil when they all ended.
func findLeaks(grace time.Duration, extra ...goleak.Option) error {
	opts := leakOptions(extra...)
	deadline := time.Now().Add(grace)
	for {
		err := goleak.Find(opts...) // waits up to about half a second itself
		if err == nil || !time.Now().Before(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
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
		if err := findLeaks(LeakGrace); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: goroutines still running %v after the tests: %v\n", LeakGrace, err)
			code = 1
		}
	}
	return code
}

// CheckNoLeaks registers a cleanup that fails t when goroutines started during the
// test are still running LeakGrace after it ends. Do not use it in parallel tests.
func CheckNoLeaks(t testing.TB) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if err := findLeaks(LeakGrace, before); err != nil {
			t.Errorf("goroutine leak: goroutines started by the test still running %v after it: %v", LeakGrace, err)
		}
	})
}

// WaitGoroutines waits up to grace for every goroutine but the caller and the
// runtime's and test framework's own to end. It returns nil when they did, and
// otherwise goleak's report of those still running (their stacks), as one string.
func WaitGoroutines(grace time.Duration) []string {
	if err := findLeaks(grace); err != nil {
		return []string{err.Error()}
	}
	return nil
}
