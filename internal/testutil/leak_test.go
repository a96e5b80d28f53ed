package testutil

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// leakChildEnv makes TestLeakChecks play one of its child roles.
const leakChildEnv = "GITFLEET_TESTUTIL_LEAK_CHILD"

// TestLeakChecks runs this test binary as a child whose only test leaves a
// goroutine behind, and checks what the leak checks make of it: a server's accept
// loop left running is reported by VerifyMain (exit 1, naming the goroutine) and
// by CheckNoLeaks (the test fails), in both cases only after LeakGrace; a
// goroutine that ends by itself within the grace period (after two seconds, far
// longer than goleak's own wait) is not reported.
func TestLeakChecks(t *testing.T) {
	if mode := os.Getenv(leakChildEnv); mode != "" {
		leakChild(t, mode)
		return
	}
	cases := []struct {
		mode     string
		wantCode int
		wantOut  []string
		minTime  time.Duration
	}{
		{"server", 1, []string{"goroutine leak", "testutil.acceptLoop"}, LeakGrace},
		{"checknoleaks", 1, []string{"--- FAIL: TestLeakChecks", "goroutine leak", "testutil.acceptLoop"}, LeakGrace},
		{"slow", 0, []string{"PASS"}, 2 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLeakChecks$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), leakChildEnv+"="+c.mode, "GORACE=atexit_sleep_ms=0")
			t0 := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(t0)
			code := 0
			if err != nil {
				ee, ok := err.(*exec.ExitError)
				if !ok {
					t.Fatalf("child: %v", err)
				}
				code = ee.ExitCode()
			}
			if code != c.wantCode {
				t.Fatalf("child exited %d, want %d; output:\n%s", code, c.wantCode, out)
			}
			for _, want := range c.wantOut {
				if !strings.Contains(string(out), want) {
					t.Errorf("child output lacks %q:\n%s", want, out)
				}
			}
			if took < c.minTime {
				t.Errorf("child took %v, want at least %v", took, c.minTime)
			}
		})
	}
}

// leakChild is the child's side of TestLeakChecks.
func leakChild(t *testing.T, mode string) {
	switch mode {
	case "server":
		startLeakyServer(t)
	case "checknoleaks":
		CheckNoLeaks(t)
		startLeakyServer(t)
	case "slow":
		go func() { time.Sleep(2 * time.Second) }()
	default:
		t.Fatalf("unknown child mode %q", mode)
	}
}

// startLeakyServer starts an accept loop on a loopback listener and never closes
// it, as a test that forgets to shut a server down does.
func startLeakyServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go acceptLoop(l)
}

func acceptLoop(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
