package portfwd

import (
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/bench"
	"github.com/gitfleet/gitfleet/internal/testutil"
)

// The benchmarks run portfwd (this test binary re-executed as a Forwarder
// process) and haproxy side by side, on the same configuration file and the
// same loopback client and server, in one run:
//
//	go test -run '^$' -bench . -benchtime 2s ./portfwd
//
// PORTFWD_BENCH_BULK sets the bytes sent each way per bulk connection
// (default 256 MiB; 1073741824 for the 1 GiB).

// benchConfig is the configuration both forwarders run.
func benchConfig(front, backend string) string {
	return fmt.Sprintf(`
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen bench
    bind %s
    server s %s
`, front, backend)
}

// checkedConfig is benchConfig with the server health-checked over HTTP on
// healthAddr's port, as a farm of nodes is (option httpchk, check port N).
func checkedConfig(front, backend, healthAddr string) string {
	_, port, _ := net.SplitHostPort(healthAddr)
	return strings.Replace(benchConfig(front, backend), "    server s "+backend+"\n",
		"    option httpchk GET /status/ready\n    http-check expect status 200\n"+
			"    server s "+backend+" check port "+port+" inter 1s fall 3 rise 2\n", 1)
}

type peer struct {
	name  string
	front string
	pid   int
}

// startPeers runs both forwarders in front of backend.
func startPeers(b *testing.B, backend string) []peer {
	return startPeersWith(b, "", func(front string) string { return benchConfig(front, backend) })
}

// startPeersWith runs both forwarders on the configuration config returns
// for a front address; suffix is added to the peers' names.
func startPeersWith(b *testing.B, suffix string, config func(front string) string) []peer {
	b.Helper()
	testutil.Require(b, "haproxy")
	pf, hp := closedPort(b), closedPort(b)
	p1 := startHelper(b, config(pf), pf)
	p2 := startHAProxy(b, config(hp), hp)
	return []peer{{"portfwd" + suffix, pf, p1.cmd.Process.Pid}, {"haproxy" + suffix, hp, p2.cmd.Process.Pid}}
}

func bulkSize() int64 {
	if n, err := strconv.ParseInt(os.Getenv("PORTFWD_BENCH_BULK"), 10, 64); err == nil && n > 0 {
		return n
	}
	return 256 << 20
}

// pump writes n bytes to c and shuts down its output.
func pump(c *net.TCPConn, n int64) error {
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return c.CloseWrite()
}

// drain reads c to EOF and returns the byte count.
func drain(c *net.TCPConn) (int64, error) {
	buf := make([]byte, 1<<20)
	var total int64
	for {
		k, err := c.Read(buf)
		total += int64(k)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// BenchmarkBulk moves bulkSize bytes each way, at once, through one
// connection per iteration.
func BenchmarkBulk(b *testing.B) {
	size := bulkSize()
	be := serve(b, func(c net.Conn) {
		tc := c.(*net.TCPConn)
		done := make(chan struct{})
		go func() {
			pump(tc, size)
			close(done)
		}()
		drain(tc)
		<-done
	})
	peers := startPeers(b, be.addr())
	// HAProxy splices only when told to; measure it that way too.
	hs := closedPort(b)
	spliced := startHAProxy(b, strings.Replace(benchConfig(hs, be.addr()), "mode tcp", "mode tcp\n    option splice-auto", 1), hs)
	peers = append(peers, peer{"haproxy-splice", hs, spliced.cmd.Process.Pid})
	for _, p := range peers {
		b.Run(p.name, func(b *testing.B) {
			b.SetBytes(2 * size)
			for range b.N {
				c, err := net.Dial("tcp", p.front)
				if err != nil {
					b.Fatal(err)
				}
				tc := c.(*net.TCPConn)
				errc := make(chan error, 1)
				go func() { errc <- pump(tc, size) }()
				got, err := drain(tc)
				if err != nil || got != size {
					b.Fatalf("received %d of %d bytes: %v", got, size, err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkConnRate opens connections from 64 concurrent clients, each
// sending 1 KiB that the server echoes before closing: through each forwarder
// as is, and (the -httpchk peers) with the server health-checked over HTTP on
// another port every second, as a farm of nodes is.
func BenchmarkConnRate(b *testing.B) {
	be := serve(b, func(c net.Conn) {
		buf := make([]byte, 1024)
		if _, err := io.ReadFull(c, buf); err == nil {
			c.Write(buf)
		}
	})
	health := newHealthNode(b, "health")
	peers := startPeers(b, be.addr())
	peers = append(peers, startPeersWith(b, "-httpchk", func(front string) string {
		return checkedConfig(front, be.addr(), health.health.Listener.Addr().String())
	})...)
	for _, p := range peers {
		b.Run(p.name, func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			// The forwarder is a child of this process: the benchmark's own
			// CPU is the tree's less the forwarder's.
			fwdCPU, treeCPU := bench.TreeCPU(p.pid), bench.TreeCPU(os.Getpid())
			start := time.Now()
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 1024)
					for next.Add(1) <= int64(b.N) {
						c, err := net.Dial("tcp", p.front)
						if err != nil {
							errs <- err
							return
						}
						tc := c.(*net.TCPConn)
						tc.SetLinger(0) // no TIME_WAIT on the client's ports
						if _, err := tc.Write(buf); err != nil {
							errs <- err
						}
						if _, err := io.ReadFull(tc, buf); err != nil {
							errs <- err
						}
						tc.Close()
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "conns/s")
			fwd := bench.TreeCPU(p.pid) - fwdCPU
			self := bench.TreeCPU(os.Getpid()) - treeCPU - fwd
			b.ReportMetric(float64(fwd.Microseconds())/float64(b.N), "fwd-cpu-µs/conn")
			b.ReportMetric(float64(self.Microseconds())/float64(b.N), "bench-cpu-µs/conn")
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkLatency times 1 KiB request/response round trips on a held
// connection, directly and through each forwarder; p99 through a forwarder
// minus p99 direct is the latency it adds.
func BenchmarkLatency(b *testing.B) {
	be := serve(b, echo)
	peers := append([]peer{{name: "direct", front: be.addr()}}, startPeers(b, be.addr())...)
	for _, p := range peers {
		b.Run(p.name, func(b *testing.B) {
			c, err := net.Dial("tcp", p.front)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 1024)
			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(t0))
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)*50/100].Microseconds()), "p50-µs")
			b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkIdleMemory holds 2,000 established, idle connection pairs through
// each forwarder (after one byte each way) and reports the growth of the
// forwarder process's resident memory per pair. Each run starts a fresh
// forwarder process and measures once, whatever b.N is.
func BenchmarkIdleMemory(b *testing.B) {
	const pairs = 2000
	be := serve(b, echo)
	testutil.Require(b, "haproxy")
	starts := []struct {
		name  string
		start func(b *testing.B, config, addr string) *process
	}{
		{"portfwd", func(b *testing.B, c, a string) *process { return startHelper(b, c, a) }},
		{"haproxy", func(b *testing.B, c, a string) *process { return startHAProxy(b, c, a) }},
	}
	for _, s := range starts {
		b.Run(s.name, func(b *testing.B) {
			front := closedPort(b)
			proc := s.start(b, benchConfig(front, be.addr()), front)
			p := peer{s.name, front, proc.cmd.Process.Pid}
			time.Sleep(500 * time.Millisecond)
			before := rssKiB(b, p.pid)
			conns := make([]net.Conn, 0, pairs)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			one := []byte{1}
			for range pairs {
				c, err := net.Dial("tcp", p.front)
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
				if _, err := c.Write(one); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, one); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(time.Second)
			after := rssKiB(b, p.pid)
			b.ReportMetric(float64(after-before)/pairs, "KiB/pair")
			b.ReportMetric(float64(after), "rss-KiB")
		})
	}
}
