package sshserve_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/gitexec"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// target is one way of reaching the benchmark repository.
type target struct {
	name string
	url  string
	git  *testutil.Git
}

// benchSetup serves one copy of the 40,000-object preset three ways: through
// gitfleet (sshserve over a mesh.Store), through OpenSSH's sshd running
// git-upload-pack, and through the no-SSH floor (GIT_SSH_COMMAND runs the remote
// command locally). All three read the same directory on disk, repacked with a
// bitmap as a maintained repository is; every client is the real git, with the
// real OpenSSH client for the first two.
func benchSetup(b *testing.B) (*sshservetest.Server, *testutil.Sshd, *testutil.Key, []target) {
	return benchSetupT(b)
}

// bigServer starts a server holding the 40,000-object preset as PROJ/big,
// repacked with a bitmap as a maintained repository is, and a key for its
// user.
func bigServer(b testing.TB, configure ...sshservetest.Option) (*sshservetest.Server, *testutil.Key) {
	b.Helper()
	srv := sshservetest.NewServer(b, configure...)
	srv.SeedFrom("PROJ", "big", testutil.CachedRepo(b, testutil.Preset40k))
	dir := filepath.Join(srv.Store.Root(), "PROJ", "big.git")
	if _, err := gitexec.Run(context.Background(), dir, nil, "repack", "-a", "-d", "-q", "--write-bitmap-index"); err != nil {
		b.Fatal(err)
	}
	key := testutil.GenerateKey(b, testutil.Ed25519)
	srv.AddKey(srv.User, key.Public)
	return srv, key
}

func benchSetupT(b testing.TB) (*sshservetest.Server, *testutil.Sshd, *testutil.Key, []target) {
	b.Helper()
	srv, key := bigServer(b)
	dir := filepath.Join(srv.Store.Root(), "PROJ", "big.git")
	sshd := testutil.StartSshd(b, []*testutil.Key{key})
	// OpenSSH as installed: each command runs through the user's login shell,
	// start-up files included (the issue's baseline: "~0.6 s per connection
	// before git starts" on this machine). "openssh" above skips the shell's
	// start-up files: the leanest OpenSSH, the stricter peer.
	sshdLogin := testutil.StartSshd(b, []*testutil.Key{key}, testutil.LoginShellEnv())

	ours := testutil.NewGit(b)
	ours.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(key.Path, srv.KnownHosts))
	ours.SetEnv("GIT_SSH_VARIANT", "ssh")
	theirs := testutil.NewGit(b)
	theirs.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(key.Path, sshd.KnownHosts(b)))
	theirs.SetEnv("GIT_SSH_VARIANT", "ssh")
	login := testutil.NewGit(b)
	login.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(key.Path, sshdLogin.KnownHosts(b)))
	login.SetEnv("GIT_SSH_VARIANT", "ssh")

	// The floor: "ssh" is a script that runs the last argument (the remote
	// command) with sh, as sshd would, minus SSH.
	script := filepath.Join(b.TempDir(), "local-ssh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nfor last; do :; done\nexec sh -c \"$last\"\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	floor := testutil.NewGit(b)
	floor.SetEnv("GIT_SSH_COMMAND", script)
	floor.SetEnv("GIT_SSH_VARIANT", "ssh")
	return srv, sshd, key, []target{
		{"gitfleet", srv.URL("PROJ", "big"), ours},
		{"openssh", sshd.URL(dir), theirs},
		{"openssh-login", sshdLogin.URL(dir), login},
		{"floor", "ssh://localhost" + dir, floor},
	}
}

// BenchmarkVsOpenSSH measures gitfleet side by side with OpenSSH sshd and the
// no-SSH floor; see the package documentation for figures and the command.
func BenchmarkVsOpenSSH(b *testing.B) {
	srv, sshd, key, targets := benchSetup(b)
	b.Run("clone", func(b *testing.B) {
		for _, tg := range targets {
			b.Run(tg.name, func(b *testing.B) {
				var cpu time.Duration
				for i := 0; i < b.N; i++ {
					dst := filepath.Join(b.TempDir(), "c.git")
					cmd := tg.git.Command("", "clone", "-q", "--bare", tg.url, dst)
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("clone: %v\n%s", err, out)
					}
					cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
				}
				// The client side's CPU: git and what it waited for (the ssh
				// client, index-pack).
				b.ReportMetric(cpu.Seconds()/float64(b.N), "client-cpu-s/op")
			})
		}
	})
	b.Run("ls-remote", func(b *testing.B) {
		for _, tg := range targets {
			b.Run(tg.name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					out, err := tg.git.TryRun("", "ls-remote", tg.url)
					if err != nil || !strings.Contains(out, "refs/heads/main") {
						b.Fatalf("ls-remote: %v %q", err, out)
					}
				}
			})
		}
	})
	b.Run("clone32", func(b *testing.B) {
		const n = 32
		for _, tg := range targets {
			b.Run(tg.name, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					var wg sync.WaitGroup
					errs := make(chan error, n)
					base := b.TempDir()
					for j := 0; j < n; j++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							dst := filepath.Join(base, strconv.Itoa(j)+".git")
							if _, err := tg.git.TryRun("", "clone", "-q", "--bare", tg.url, dst); err != nil {
								errs <- err
							}
						}()
					}
					wg.Wait()
					close(errs)
					for err := range errs {
						b.Fatalf("one of %d concurrent clones failed: %v", n, err)
					}
				}
			})
		}
	})
	b.Run("idle100", func(b *testing.B) {
		b.Run("gitfleet", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.ReportMetric(idleMemory(b, srv, 100), "B/conn")
			}
		})
		b.Run("openssh", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.ReportMetric(sshdIdleMemory(b, sshd, key, 100), "B/conn")
			}
		})
	})
}

// idleClients starts n OpenSSH clients that authenticate and then sit idle
// (ssh -N), in batches of 20 so as to stay under the per-address limit on
// unauthenticated connections, waiting for ready(k) to report k connections up
// after each batch. The clients are stopped at test end.
func idleClients(b *testing.B, args []string, n int, ready func(k int) bool) {
	b.Helper()
	var cmds []*exec.Cmd
	b.Cleanup(func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	})
	for started := 0; started < n; {
		for j := 0; j < 20 && started < n; j++ {
			cmd := exec.Command("ssh", args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.TempDir()}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			cmds = append(cmds, cmd)
			started++
		}
		deadline := time.Now().Add(60 * time.Second)
		for !ready(started) {
			if time.Now().After(deadline) {
				b.Fatalf("fewer than %d idle connections came up", started)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// heapAndStacks returns the Go memory in use by heap objects and goroutine stacks.
func heapAndStacks() uint64 {
	var ms runtime.MemStats
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}

// idleMemory opens n idle authenticated OpenSSH connections to srv and returns the
// server's Go memory (live heap and stacks) per connection.
func idleMemory(b *testing.B, srv *sshservetest.Server, n int) float64 {
	b.Helper()
	before := heapAndStacks()
	open := srv.Stats().OpenConns
	args := append(testutil.SSHOptions(srv.User.KeyPath, srv.KnownHosts), "-N", "-p", strconv.Itoa(srv.Port), "git@"+srv.Host)
	idleClients(b, args, n, func(k int) bool {
		st := srv.Stats()
		return st.OpenConns-open == int64(k) && st.Authenticating == 0
	})
	time.Sleep(200 * time.Millisecond)
	after := heapAndStacks()
	return float64(int64(after)-int64(before)) / float64(n)
}

// sshdIdleMemory opens n idle authenticated connections to OpenSSH's sshd and
// returns the proportional set size of its per-connection processes, per
// connection.
func sshdIdleMemory(b *testing.B, sshd *testutil.Sshd, key *testutil.Key, n int) float64 {
	b.Helper()
	master := findProcess(b, filepath.Join(sshd.Dir, "sshd_config"))
	args := append(testutil.SSHOptions(key.Path, sshd.KnownHosts(b)), "-N", "-p", strconv.Itoa(sshd.Port), sshd.User+"@127.0.0.1")
	authenticated := func() (int, []int) {
		// Each authenticated connection has a privileged monitor and an
		// unprivileged child named after the user.
		kids := descendants(master)
		up := 0
		for _, pid := range kids {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if c := string(cmd); strings.HasPrefix(c, "sshd: "+sshd.User) && !strings.Contains(c, "[priv]") {
				up++
			}
		}
		return up, kids
	}
	idleClients(b, args, n, func(k int) bool { up, _ := authenticated(); return up == k })
	_, kids := authenticated()
	var pss uint64
	for _, pid := range kids {
		pss += pssOf(pid)
	}
	return float64(pss) / float64(n)
}

// findProcess returns the pid of the process whose command line contains s; it
// skips the benchmark outside Linux.
func findProcess(b *testing.B, s string) int {
	b.Helper()
	if runtime.GOOS != "linux" {
		b.Skip("the memory comparison reads /proc (Linux only)")
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if c := string(cmd); strings.Contains(c, s) && (strings.HasPrefix(c, "/") || strings.Contains(c, "[listener]")) {
			return pid // the master names itself "[listener]"; its children are "sshd: user..."
		}
	}
	b.Fatalf("no process with %q in its command line", s)
	return 0
}

// descendants returns the pids of every process below pid.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid ...
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			f := strings.Fields(string(stat[i+1:]))
			if len(f) > 1 {
				parent[p], _ = strconv.Atoi(f[1])
			}
		}
	}
	var out []int
	for p := range parent {
		for q := parent[p]; q > 1; q = parent[q] {
			if q == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// pssOf returns the proportional set size of pid in bytes.
func pssOf(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Pss:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}
