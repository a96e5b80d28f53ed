//go:build linux

package reliability

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// soakRepo is larger than SmallRepo so that a clone lasts long enough to be cut
// in the middle of its pack.
var soakRepo = testutil.RepoSpec{Commits: 150, FilesPerCommit: 8, FileSize: 3000, Dirs: 10, Branches: 4, Tags: 4, Seed: 14}

// soakSize reads the soak's size from the environment.
func soakSize(t *testing.T) (clients int, d time.Duration) {
	clients, d = 50, 20*time.Second
	if v := os.Getenv("GITFLEET_SOAK_CLIENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("GITFLEET_SOAK_CLIENTS=%q: want a positive number", v)
		}
		clients = n
	}
	if v := os.Getenv("GITFLEET_SOAK_DURATION"); v != "" {
		x, err := time.ParseDuration(v)
		if err != nil || x <= 0 {
			t.Fatalf("GITFLEET_SOAK_DURATION=%q: want a duration such as 60s", v)
		}
		d = x
	}
	return clients, d
}

// soakAddrs is how many loopback source addresses the clients are spread
// over (127.0.0.2 and up), as clients of a real server come from many
// addresses: the server's per-address limits (sshserve.DefaultMaxStartupsPerIP)
// are not what the soak measures. portfwd passes each address on in its PROXY
// header.
const soakAddrs = 10

// soakTally counts what the clients did.
type soakTally struct {
	mu       sync.Mutex
	clones   int
	pushes   int
	cut      int      // operations whose client was killed
	failures []string // operations that failed although not cut
}

// refusedAtConnect reports whether a failed git operation's message is what
// OpenSSH prints when the server closes the connection before authentication,
// as it does for a connection beyond its startup limits.
func refusedAtConnect(msg string) bool {
	for _, s := range []string{"closed by remote host", "Connection reset by peer", "kex_exchange_identification"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (s *soakTally) add(push, cut bool, err error, what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if push {
		s.pushes++
	} else {
		s.clones++
	}
	switch {
	case cut:
		s.cut++
	case err != nil:
		s.failures = append(s.failures, fmt.Sprintf("%s: %v", what, err))
	}
}

// TestSoak runs concurrent clones and pushes through portfwd into the server
// with random client disconnects; see the package documentation for what it
// checks afterwards.
func TestSoak(t *testing.T) {
	clients, duration := soakSize(t)
	testutil.Require(t, "ssh")
	small, mid := testutil.CachedRepo(t, testutil.SmallRepo), testutil.CachedRepo(t, soakRepo)
	node := testutil.StartServer(t, testutil.ServerOptions{Bin: serverBin, Env: []string{
		"PLUGIN_SSH_PROXYPROTOCOL=required", "PLUGIN_SSH_PROXYPROTOCOL_TRUSTED=127.0.0.1/32",
	}})
	key := node.AddUser(t, "soak", "SOAK")
	front := testutil.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "ssh-proxy.cfg")
	if err := os.WriteFile(cfg, []byte(proxyConfig(front, node.SSHPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	fwd := startForwarder(t, cfg, front)
	g := testutil.NewGit(t)
	g.SetSSH(key, node.KnownHosts(t, front))
	url := func(slug string) string { return fmt.Sprintf("ssh://git@127.0.0.1:%d/soak/%s.git", front, slug) }
	for slug, src := range map[string]string{"small": small, "mid": mid} {
		node.CreateRepo(t, "SOAK", slug)
		g.Run(src, "push", "-q", url(slug), "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
	}
	// A first clone through the whole chain, then the baseline.
	g.Run(t.TempDir(), "clone", "-q", "--bare", url("small"), "warm.git")
	node.Client.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	serverFDs, fwdFDs := treeFDs(node.PID()), treeFDs(fwd.cmd.Process.Pid)

	t.Logf("soak: %d clients for %v through portfwd (PROXY v2) into the server", clients, duration)
	var tally soakTally
	var wg sync.WaitGroup
	deadline := time.Now().Add(duration)
	work := t.TempDir()
	// Clients start over the first quarter of the soak (at most 5 s), as load
	// builds up on a real server, not in one instant.
	ramp := min(duration/4, 5*time.Second)
	sshCmd := testutil.SSHCommand(key.Path, node.KnownHosts(t, front))
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(ramp * time.Duration(i) / time.Duration(clients))
			from := fmt.Sprintf("GIT_SSH_COMMAND=%s -o BindAddress=127.0.0.%d", sshCmd, 2+i%soakAddrs)
			soakClient(g, from, i, filepath.Join(work, strconv.Itoa(i)), url, deadline, &tally)
		}()
	}
	wg.Wait()
	t.Logf("soak: %d clones, %d pushes, %d cut by a client disconnect, %d other failures",
		tally.clones, tally.pushes, tally.cut, len(tally.failures))

	if node.Exited() {
		t.Fatalf("the server exited during the soak:\n%s", node.Stderr)
	}
	// A connection beyond the server's startup limits is refused before
	// authentication, by design, and the server logs each refusal; only as many
	// failures as it logged may be such refusals.
	limited := strings.Count(node.Stderr.String(), `msg="connection refused: limit reached"`)
	var other []string
	refused := 0
	for _, f := range tally.failures {
		if refusedAtConnect(f) && refused < limited {
			refused++
			continue
		}
		other = append(other, f)
	}
	if refused > 0 {
		t.Logf("soak: %d operations were refused at connect by the server's startup limits (it logged %d refusals)", refused, limited)
	}
	for i, f := range other {
		if i == 10 {
			t.Errorf("... and %d more", len(other)-10)
			break
		}
		t.Errorf("an operation that was not cut failed: %s", f)
	}
	if len(other) > 0 {
		t.Logf("what the server said about closing connections:\n%s", strings.Join(closings(node.Stderr.String(), 40), "\n"))
	}
	if tally.clones+tally.pushes < clients || tally.cut == 0 {
		t.Errorf("the soak did not exercise the server: %d operations, %d cut", tally.clones+tally.pushes, tally.cut)
	}
	for _, line := range append(logLines(node.Stderr.String(), "ERROR"), logLines(fwd.stderr.String(), "ERROR")...) {
		t.Errorf("error logged during the soak: %s", line)
	}
	if n := waitFDs(serverFDs, func() int { return treeFDs(node.PID()) }); n > serverFDs {
		t.Errorf("server file descriptors grew from %d to %d:\n%s", serverFDs, n, fdList(node.PID()))
	}
	if n := waitFDs(fwdFDs, func() int { return treeFDs(fwd.cmd.Process.Pid) }); n > fwdFDs {
		t.Errorf("portfwd file descriptors grew from %d to %d:\n%s", fwdFDs, n, fdList(fwd.cmd.Process.Pid))
	}
	for _, slug := range []string{"small", "mid"} {
		fsck(t, node.RepoDir("SOAK", slug))
	}
	// Every soak branch on the server is a commit its client made: the last it
	// pushed, or an earlier one when the last push was cut.
	for _, wt := range clientBranches(t, g, node.RepoDir("SOAK", "small"), "soak-", work) {
		fsck(t, wt)
	}

	// Goroutines: the soaked processes against fresh ones that served one clone.
	soakedFwd, fwdDump := dumpGoroutines(t, fwd.cmd.Process.Pid, fwd.done, fwd.stderr.String)
	soakedSrv, srvDump := dumpGoroutines(t, node.PID(), node.Done(), node.Stderr.String)
	node.Start()
	node.WaitRunning()
	fwd2 := startForwarder(t, cfg, front)
	g.Run(t.TempDir(), "clone", "-q", "--bare", url("small"), "fresh.git")
	time.Sleep(500 * time.Millisecond)
	freshFwd, _ := dumpGoroutines(t, fwd2.cmd.Process.Pid, fwd2.done, fwd2.stderr.String)
	freshSrv, _ := dumpGoroutines(t, node.PID(), node.Done(), node.Stderr.String)
	t.Logf("goroutines after the soak: server %d (fresh %d), portfwd %d (fresh %d)", soakedSrv, freshSrv, soakedFwd, freshFwd)
	// A few goroutines of slack: timers and pooled connections that a fresh
	// process may not have started yet. A per-connection leak over the soak's
	// hundreds of connections is far beyond it.
	const slack = 5
	if soakedSrv > freshSrv+slack {
		t.Errorf("server goroutines grew: %d after the soak, %d in a fresh server\n%s", soakedSrv, freshSrv, tail(srvDump, 8000))
	}
	if soakedFwd > freshFwd+slack {
		t.Errorf("portfwd goroutines grew: %d after the soak, %d in a fresh one\n%s", soakedFwd, freshFwd, tail(fwdDump, 8000))
	}
}

// closings returns up to n log lines in which the server closes or refuses a
// connection, or warns.
func closings(log string, n int) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if len(out) == n {
			break
		}
		for _, s := range []string{"level=WARN", `msg="connection closed"`, `msg="handshake failed"`, "refused"} {
			if strings.Contains(line, s) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// soakClient clones (80%) and pushes (20%) until deadline; about a third of its
// operations are cut by killing git and ssh at a random moment.
func soakClient(g *testutil.Git, sshEnv string, id int, dir string, url func(string) string, deadline time.Time, tally *soakTally) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	wt := filepath.Join(dir, "wt")
	haveWT := false
	for n := 0; time.Now().Before(deadline); n++ {
		push := rng.IntN(100) < 20
		var cut time.Duration
		if rng.IntN(100) < 33 {
			cut = time.Duration(rng.IntN(1500)) * time.Millisecond
		}
		if push && !haveWT {
			// The work tree comes from an uncut clone.
			if _, err := runCut(g, sshEnv, dir, 0, "clone", "-q", url("small"), "wt"); err != nil {
				tally.add(false, false, err, "clone of the work tree")
				continue
			}
			haveWT = true
		}
		if push {
			if err := os.WriteFile(filepath.Join(wt, "soak.txt"), []byte(fmt.Sprintf("client %d change %d\n", id, n)), 0o644); err != nil {
				tally.add(true, false, err, "write")
				continue
			}
			if _, err := runCut(g, sshEnv, wt, 0, "add", "soak.txt"); err != nil {
				tally.add(true, false, err, "add")
				continue
			}
			if _, err := runCut(g, sshEnv, wt, 0, "commit", "-q", "-m", fmt.Sprintf("soak %d/%d", id, n)); err != nil {
				tally.add(true, false, err, "commit")
				continue
			}
			wasCut, err := runCut(g, sshEnv, wt, cut, "push", "-q", "origin", fmt.Sprintf("HEAD:refs/heads/soak-%d", id))
			tally.add(true, wasCut, err, fmt.Sprintf("push by client %d", id))
			continue
		}
		slug := "mid"
		if rng.IntN(2) == 0 {
			slug = "small"
		}
		target := filepath.Join(dir, fmt.Sprintf("clone-%d.git", n))
		wasCut, err := runCut(g, sshEnv, dir, cut, "clone", "-q", "--bare", url(slug), target)
		tally.add(false, wasCut, err, fmt.Sprintf("clone of %s by client %d", slug, id))
		os.RemoveAll(target)
	}
}

// runCut runs git, with sshEnv added to its environment, in its own process group and, when cut is not zero, kills
// the group (git and ssh) after cut. It reports whether the kill happened.
func runCut(g *testutil.Git, sshEnv, dir string, cut time.Duration, args ...string) (bool, error) {
	cmd := g.Command(dir, args...)
	cmd.Env = append(cmd.Env, sshEnv)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	if err := cmd.Start(); err != nil {
		return false, err
	}
	wasCut := false
	var timer *time.Timer
	var mu sync.Mutex
	if cut > 0 {
		pid := cmd.Process.Pid
		timer = time.AfterFunc(cut, func() {
			mu.Lock()
			defer mu.Unlock()
			wasCut = true
			syscall.Kill(-pid, syscall.SIGKILL)
		})
	}
	err := cmd.Wait()
	if timer != nil {
		timer.Stop()
	}
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		err = fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return wasCut, err
}
