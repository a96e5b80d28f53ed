//go:build unix

package sshserve_test

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
)

// selfCPU returns the CPU time this process (the in-process server, not its git
// children) has used so far.
func selfCPU(b *testing.B) time.Duration { return rusageCPU(b, syscall.RUSAGE_SELF) }

// childrenCPU returns the CPU time of this process's reaped children (the
// clients: git, ssh, index-pack; the in-process server's git children too).
func childrenCPU(b *testing.B) time.Duration { return rusageCPU(b, syscall.RUSAGE_CHILDREN) }

func rusageCPU(b *testing.B, who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCiphers clones the 40,000-object preset (16 MB pack) and runs ls-remote
// with the OpenSSH client restricted to each cipher the server offers (CTR with
// hmac-sha2-256-etm), so that what chacha20-poly1305 or AES-CTR costs beside
// AES-GCM can be read off side by side. server-cpu-s/op is the CPU of the server
// process alone (SSH, encryption, the store's plumbing), without its git children,
// whose work is the same for every cipher. Figures are in the package
// documentation.
func BenchmarkCiphers(b *testing.B) {
	srv, key := bigServer(b)
	url := srv.URL("PROJ", "big")
	for _, op := range []string{"clone", "ls-remote"} {
		b.Run(op, func(b *testing.B) {
			for _, cipher := range sshserve.DefaultCiphers() {
				b.Run(strings.TrimSuffix(cipher, "@openssh.com"), func(b *testing.B) {
					git := testutil.NewGit(b)
					git.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(key.Path, srv.KnownHosts)+" -c "+cipher+" -m hmac-sha2-256-etm@openssh.com")
					git.SetEnv("GIT_SSH_VARIANT", "ssh")
					before := srv.Stats().Ciphers[cipher]
					start := selfCPU(b)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						switch op {
						case "clone":
							if out, err := git.TryRun("", "clone", "-q", "--bare", url, filepath.Join(b.TempDir(), "c.git")); err != nil {
								b.Fatalf("clone: %v\n%s", err, out)
							}
						case "ls-remote":
							if out, err := git.TryRun("", "ls-remote", url); err != nil || !strings.Contains(out, "refs/heads/main") {
								b.Fatalf("ls-remote: %v %q", err, out)
							}
						}
					}
					b.StopTimer()
					b.ReportMetric((selfCPU(b)-start).Seconds()/float64(b.N), "server-cpu-s/op")
					if got := srv.Stats().Ciphers[cipher] - before; got != uint64(b.N) {
						b.Fatalf("%d connections on %s, want %d", got, cipher, b.N)
					}
				})
			}
		})
	}
}

// BenchmarkClonePacing clones the 40,000-object preset (16 MB pack, answered
// from the store's response cache after the first clone) with the output
// pacer on (the default) and off: server-cpu-s/op is the server process alone
// (SSH, encryption, pacing, the store's plumbing), children-cpu-s/op the
// clients and the store's git children.
func BenchmarkClonePacing(b *testing.B) {
	for _, paced := range []bool{true, false} {
		b.Run(map[bool]string{true: "paced", false: "unpaced"}[paced], func(b *testing.B) {
			srv, key := bigServer(b, func(s *sshserve.Server) { s.NoOutputPacing = !paced })
			git := testutil.NewGit(b)
			git.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(key.Path, srv.KnownHosts))
			git.SetEnv("GIT_SSH_VARIANT", "ssh")
			clone := func() {
				if out, err := git.TryRun("", "clone", "-q", "--bare", srv.URL("PROJ", "big"), filepath.Join(b.TempDir(), "c.git")); err != nil {
					b.Fatalf("clone: %v\n%s", err, out)
				}
			}
			clone() // warm the caches
			self, children := selfCPU(b), childrenCPU(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				clone()
			}
			b.StopTimer()
			b.ReportMetric((selfCPU(b)-self).Seconds()/float64(b.N), "server-cpu-s/op")
			b.ReportMetric((childrenCPU(b)-children).Seconds()/float64(b.N), "children-cpu-s/op")
		})
	}
}
