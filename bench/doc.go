// Package bench measures gitfleet against its peers on the machine it runs on
// and writes BENCHMARKS.md. Its command is bench/run, a script that checks the
// programs it needs (go, git, ssh, sshd, haproxy; it installs nothing and names
// what is missing) and runs TestBench, the driver, which is built only with the
// bench tag:
//
//	go test -tags bench -run '^TestBench$' -v ./bench/ -args -out BENCHMARKS.md [-quick] [-only 1,5] [-rounds N]
//
// The driver builds examples/server and examples/portfwd, generates the test
// repositories once per machine (testutil.SmallRepo and testutil.Preset40k;
// GITFLEET_BENCH_REPO replaces the medium one with any repository), starts
// every peer itself on loopback with throwaway configuration, and runs these
// comparisons, each interleaved (A B C A B C ...) after one warm-up run of each
// peer:
//
//  1. clone over SSH, small and medium repositories: gitfleet's server vs
//     OpenSSH's sshd running git-upload-pack on the same directory vs file://;
//  2. `git ls-remote` rate, a new connection each;
//  3. a clone storm: 32 concurrent clones (wall time, server CPU, and the
//     caches' hit rate from the server's /metrics);
//  4. clone through the mesh sidecar vs the in-process store (the mesh
//     package's own interleaved benchmark, run once per round);
//  5. portfwd vs HAProxy on the same configuration: bulk throughput,
//     connection rate, p99 latency on held connections, memory per idle
//     connection;
//  6. a fresh mirror's initial sync vs `git clone --mirror` over OpenSSH, and
//     push-to-mirror propagation (p50, p99);
//  7. props vs magiconair/properties loading the same file (props' own
//     benchmark, the two alternating);
//  8. a push of 1,000, 10,000 and 100,000 refs without --atomic into a new
//     repository (100,000 only in a full run; no warm-up, at most two rounds
//     for 100,000): gitfleet's primary vs OpenSSH's sshd running
//     git-receive-pack vs file://; the ratios staying flat across the sizes
//     show linear growth;
//  9. Git LFS over SSH (git-lfs 3.3 against gitfleet's primary) vs OpenSSH's
//     scp of the same file: upload and download of a 200 MiB object (50 MiB
//     in a quick run) in MB/s, and in a full run one upload of 1 GiB, whose
//     server peak memory shows that objects stream;
//  10. a mirror farm of three nodes behind portfwd (HTTPS readiness checks)
//     against one of its nodes alone: a 64-clone storm (wall time, failures),
//     and the time from a push to the primary until every node has it
//     (p50, p99);
//  11. CI polls: 64 concurrent `git fetch` that find nothing new, gitfleet vs
//     OpenSSH (wall time, server CPU per fetch).
//
// For every run it also measures the server side: Probe reads the CPU time of
// the server's process tree from /proc/<pid>/stat (the server, its sidecar,
// and the git processes they started and waited for) and samples the tree's
// summed resident memory every 20 ms for the peak.
//
// The non-test code here is the measurement and reporting library: the
// statistics (Median, Percentile, MinMax, Ratio), the process probes (Probe,
// TreeCPU, TreeRSS, OpenFDs, Descendants) and the report (WriteReport).
// The reliability tests use the process probes too.
//
// # Operating systems
//
// The package and the driver (-tags bench) build and vet on every system CI
// checks, but the measurements are Linux's: the process probes read /proc, and
// elsewhere they find no processes, so CPU and memory read as zero.
//
// # Typical usage
//
//	p := bench.StartProbe(serverPID, 20*time.Millisecond)
//	runClone()
//	cpu, peak := p.Stop()
//	fmt.Printf("server CPU %v, peak memory %d bytes\n", cpu, peak)
package bench
