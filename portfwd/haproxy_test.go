package portfwd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// process is a forwarder program (haproxy, or this test binary running a
// Forwarder) started for a test or benchmark.
type process struct {
	cmd  *exec.Cmd
	stop func() // ends the process and waits for it; safe to call twice
}

// startHAProxy runs haproxy in the foreground with the configuration text
// and waits until addr accepts connections.
func startHAProxy(t testing.TB, config, addr string) *process {
	t.Helper()
	bin := testutil.Require(t, "haproxy")
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	waitListening(t, addr, func() string { return stderr.String() })
	return &process{cmd: cmd}
}

// startHelper runs this test binary as a separate Forwarder process for the
// configuration text (see helperMain), optionally under strace.
func startHelper(t testing.TB, config, addr string, wrapper ...string) *process {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portfwd.cfg")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, wrapper...), os.Args[0], "-test.run=^$")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	p := &process{cmd: cmd, stop: func() {
		once.Do(func() {
			stdin.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}}
	t.Cleanup(p.stop)
	waitListening(t, addr, func() string { return stderr.String() })
	return p
}

func waitListening(t testing.TB, addr string, output func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never accepted connections: %v\n%s", addr, err, output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rssKiB returns the resident set size of a process; it skips the test
// outside Linux.
func rssKiB(t testing.TB, pid int) int64 {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the resident set size is read from /proc (Linux only)")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestHAProxyInterop forwards through portfwd -> haproxy -> portfwd -> a
// server: each forwarder sends the next a PROXY header (send-proxy or
// send-proxy-v2) and the next accepts it (accept-proxy), so the server must
// see the client's own address, and data must pass both ways.
func TestHAProxyInterop(t *testing.T) {
	testutil.Require(t, "haproxy")
	for _, version := range []string{"send-proxy-v2", "send-proxy"} {
		t.Run(version, func(t *testing.T) {
			origin := originServer(t)
			inner := start(t, fmt.Sprintf("listen inner\n bind 127.0.0.1:0 accept-proxy\n server o %s send-proxy-v2\n", origin.addr()))
			hpAddr := closedPort(t)
			startHAProxy(t, fmt.Sprintf(`
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen middle
    bind %s accept-proxy
    server pf %s %s
`, hpAddr, addr(t, inner, "inner"), version), hpAddr)
			outer := start(t, fmt.Sprintf("listen outer\n bind 127.0.0.1:0\n server hp %s %s\n", hpAddr, version))

			c, err := net.Dial("tcp", addr(t, outer, "outer"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("v2 %s\n", c.LocalAddr()); line != want {
				t.Fatalf("server saw %q, want %q: the client address did not survive the chain", line, want)
			}
			payload := strings.Repeat("0123456789abcdef", 1<<14) // 256 KiB
			go io.WriteString(c, payload)
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(r, got); err != nil || string(got) != payload {
				t.Fatalf("payload through the chain: %v", err)
			}
			// haproxy's header reached portfwd intact:
			if s := serverStats(inner, "inner", "o"); s.Total != 1 {
				t.Fatalf("inner forwarder stats %+v", s)
			}
		})
	}
}
