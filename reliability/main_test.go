//go:build linux

package reliability

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/bench"
	"github.com/gitfleet/gitfleet/internal/testutil"
)

// The binaries under test, built once in TestMain.
var serverBin, portfwdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gitfleet-reliability")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin, portfwdBin = filepath.Join(dir, "server"), filepath.Join(dir, "portfwd")
	for pkg, out := range map[string]string{"./examples/server": serverBin, "./examples/portfwd": portfwdBin} {
		if err := testutil.BuildProgram(pkg, out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	defer os.RemoveAll(dir)
	testutil.VerifyMain(m)
}

// forwarder is an examples/portfwd process.
type forwarder struct {
	cmd    *exec.Cmd
	addr   string
	port   int
	cfg    string
	stderr *testutil.LockedBuffer
	done   chan struct{}
}

// proxyConfig forwards 127.0.0.1:front to the server's SSH port with a PROXY
// v2 header, as examples/server/deploy/ssh-proxy.cfg does.
func proxyConfig(front, sshPort int) string {
	return fmt.Sprintf(`global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend gitfleet_ssh
    bind 127.0.0.1:%d
    default_backend gitfleet_ssh_servers
backend gitfleet_ssh_servers
    server gitfleet1 127.0.0.1:%d send-proxy-v2
`, front, sshPort)
}

// startForwarder runs examples/portfwd on cfg (a file) listening on port.
func startForwarder(t *testing.T, cfg string, port int) *forwarder {
	t.Helper()
	f := &forwarder{cfg: cfg, port: port, addr: fmt.Sprintf("127.0.0.1:%d", port), stderr: &testutil.LockedBuffer{}, done: make(chan struct{})}
	f.cmd = exec.Command(portfwdBin, "-f", cfg)
	f.cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	f.cmd.Stdout, f.cmd.Stderr = f.stderr, f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.cmd.Wait(); close(f.done) }()
	t.Cleanup(func() { f.cmd.Process.Kill(); <-f.done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", f.addr, time.Second)
		if err == nil {
			c.Close()
			return f
		}
		select {
		case <-f.done:
			t.Fatalf("portfwd exited: %s", f.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("portfwd does not listen on %s: %s", f.addr, f.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goroutineLine starts each goroutine in a Go traceback.
var goroutineLine = regexp.MustCompile(`(?m)^goroutine \d+ [^\n]*\[`)

// dumpGoroutines sends SIGQUIT to a Go process started with GOTRACEBACK=all,
// waits for it to exit, and returns the number of goroutines in its dump and
// the dump itself.
func dumpGoroutines(t *testing.T, pid int, done <-chan struct{}, output func() string) (int, string) {
	t.Helper()
	syscall.Kill(pid, syscall.SIGQUIT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("process %d did not exit on SIGQUIT", pid)
	}
	out := output()
	return len(goroutineLine.FindAllString(out, -1)), out
}

// treeFDs counts the open file descriptors of pid and its descendants (the
// server and its storage sidecar), except pipes. Pipes are left out because
// Go's splice path (io.Copy between TCP connections, which portfwd and the
// server's git streams use) keeps its pipe pairs in a pool that only the
// garbage collector empties: an idle process can hold a few pairs for minutes
// without a leak. Every connection and every file counts.
func treeFDs(pid int) int {
	n := 0
	for _, p := range append([]int{pid}, bench.Descendants(pid)...) {
		dir := fmt.Sprintf("/proc/%d/fd", p)
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			target, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err == nil && !strings.HasPrefix(target, "pipe:") {
				n++
			}
		}
	}
	return n
}

// fdList describes the open file descriptors of pid and its TCP sockets'
// states, for a failure message.
func fdList(pid int) string {
	out, _ := exec.Command("sh", "-c", fmt.Sprintf("ls -l /proc/%d/fd | sed 1d; ss -tanp | grep 'pid=%d,'", pid, pid)).CombinedOutput()
	return string(out)
}

// waitFDs waits up to 30 s for count() to fall to at most limit and returns
// the last count.
func waitFDs(limit int, count func() int) int {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := count()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logLines returns the lines of a text-format slog output at level.
func logLines(out, level string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "level="+level) {
			lines = append(lines, sc.Text())
		}
	}
	return lines
}

// fsck runs `git fsck --strict` on a repository directory.
func fsck(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "fsck", "--strict", "--no-progress").CombinedOutput()
	if err != nil {
		t.Errorf("fsck %s: %v\n%s", dir, err, out)
	}
}

// refs lists the refs of a repository directory, one "id name" per line.
func refs(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", dir, "for-each-ref", "--format=%(objectname) %(refname)").CombinedOutput()
	if err != nil {
		t.Fatalf("for-each-ref in %s: %v\n%s", dir, err, out)
	}
	return string(out)
}

// waitFor polls cond every 50 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clientBranches checks that every branch named prefix+N in the repository at
// dir is a commit of client N (whose worktree is work/N/wt): the last it pushed,
// or an earlier one when its last push was cut. It returns the worktrees checked.
func clientBranches(t *testing.T, g *testutil.Git, dir, prefix, work string) []string {
	t.Helper()
	var wts []string
	for _, line := range strings.Split(strings.TrimSpace(refs(t, dir)), "\n") {
		id, name, _ := strings.Cut(line, " ")
		n, ok := strings.CutPrefix(name, "refs/heads/"+prefix)
		if !ok {
			continue
		}
		wt := filepath.Join(work, n, "wt")
		if _, err := g.TryRun(wt, "merge-base", "--is-ancestor", id, "HEAD"); err != nil {
			t.Errorf("%s on the server is %s, not a commit of its client: %v", name, id, err)
		}
		wts = append(wts, wt)
	}
	return wts
}
