//go:build bench

package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// echoServer is the backend of the proxy comparisons: it echoes every byte
// back and passes on the client's half-close.
type echoServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startEcho(e *env) *echoServer {
	ln := testutil.Listen(e.t)
	s := &echoServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	e.t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// proxyConfig is the HAProxy configuration both forwarders run: the echo
// server is health-checked over HTTP on health's port every second, as the
// nodes of a mirror farm are (option httpchk, check port N).
func proxyConfig(front, backend, health string) string {
	_, port, _ := net.SplitHostPort(health)
	return fmt.Sprintf(`global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen bench
    bind %s
    option httpchk GET /status/ready
    http-check expect status 200
    server echo %s check port %s inter 1s fall 3 rise 2
`, front, backend, port)
}

// startHealth serves 200 on /status/ready for the forwarders' health checks
// and counts the checks.
func startHealth(e *env) (string, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	var checks atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status/ready" {
			http.NotFound(w, r)
			return
		}
		checks.Add(1)
		io.WriteString(w, "ready\n")
	})}
	go srv.Serve(ln)
	e.t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &checks
}

// startProxy runs prog with a configuration forwarding a free port to backend,
// and returns the front address and the process, which is killed at the end
// of the test or by the returned stop function.
func startProxy(e *env, backend, health string, prog string, args ...string) (string, *exec.Cmd, func()) {
	e.t.Helper()
	front := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(e.t))
	cfg := filepath.Join(e.t.TempDir(), "proxy.cfg")
	if err := os.WriteFile(cfg, []byte(proxyConfig(front, backend, health)), 0o644); err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(prog, append(args, "-f", cfg)...)
	stderr := &testutil.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cmd.Process.Signal(syscall.SIGKILL); <-done }) }
	e.t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err == nil {
			c.Close()
			return front, cmd, stop
		}
		select {
		case <-done:
			e.t.Fatalf("%s exited: %s", prog, stderr)
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s does not listen on %s: %s", prog, front, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// proxyPeer is one way to reach the echo server.
type proxyPeer struct {
	name string
	addr string
	pid  func() int
}

// benchProxies is comparison 5: portfwd (examples/portfwd) against HAProxy on
// the same configuration, with the direct connection as the floor.
func (e *env) benchProxies() []*Comparison {
	echo := startEcho(e)
	backend := echo.ln.Addr().String()
	health, checks := startHealth(e)
	pfAddr, pf, _ := startProxy(e, backend, health, e.portfwdBin)
	hpAddr, hp, _ := startProxy(e, backend, health, "haproxy", "-db")
	peers := []proxyPeer{
		{"portfwd", pfAddr, func() int { return pf.Process.Pid }},
		{"HAProxy", hpAddr, func() int { return hp.Process.Pid }},
		{"direct (no proxy)", backend, nil},
	}
	bulk, conns, rtts, idle := int64(1<<30), 6400, 2000, 2000
	if e.quick {
		bulk, conns, rtts, idle = 256<<20, 1280, 500, 500
	}
	common := "Both forwarders run the same HAProxy configuration (one `listen` section, `mode tcp`, one server " +
		"health-checked every second over HTTP on another port: `option httpchk`, `http-check expect status 200`, `check port N`) " +
		"in front of an echo server in the benchmark process, on loopback; HAProxy is started with `haproxy -db -f`, " +
		"portfwd with `portfwd -f`. "

	throughput := &Comparison{
		Title: "portfwd vs HAProxy: bulk throughput",
		What: common + fmt.Sprintf("One connection carries %d MiB each way at once (the echo server sends back what it reads). "+
			"Figure: MB/s (bytes both ways over wall time).", bulk>>20),
		Unit: "MB/s", HigherIsBetter: true, Reference: "HAProxy", ServerSide: true,
	}
	e.interleave(throughput, e.rounds, "", proxyContenders(peers, func(addr string) (float64, int, error) {
		return bulkRun(addr, bulk)
	})...)

	rate := &Comparison{
		Title: "portfwd vs HAProxy: connection rate",
		What: common + fmt.Sprintf("64 concurrent clients each connect, send 1 KiB, read it back and close, %d connections in all. "+
			"Figure: connections per second.", conns),
		Unit: "conn/s", HigherIsBetter: true, Reference: "HAProxy", ServerSide: true,
	}
	e.interleave(rate, e.rounds, "", proxyContenders(peers, func(addr string) (float64, int, error) {
		return connRate(addr, 64, conns)
	})...)

	latency := &Comparison{
		Title: "portfwd vs HAProxy: p99 latency on held connections",
		What: common + fmt.Sprintf("8 held connections each make %d sequential 1 KiB request/response round trips. "+
			"Figure: the 99th percentile round-trip time of the run, in microseconds.", rtts),
		Unit: "µs", Reference: "HAProxy", ServerSide: true,
	}
	var p50 sync.Map
	e.interleave(latency, e.rounds, "", proxyContenders(peers, func(addr string) (float64, int, error) {
		all, err := roundTrips(addr, 8, rtts)
		if err != nil {
			return 0, 0, err
		}
		v, _ := p50.LoadOrStore(addr, &[]float64{})
		*v.(*[]float64) = append(*v.(*[]float64), Percentile(all, 50))
		return Percentile(all, 99), 0, nil
	})...)
	for _, p := range peers {
		if v, ok := p50.Load(p.addr); ok {
			latency.Notes = append(latency.Notes, fmt.Sprintf("%s: median p50 %s µs.", p.name, num(Median(*v.(*[]float64)))))
		}
	}
	direct := latency.Peer("direct (no proxy)").Median()
	for _, name := range []string{"portfwd", "HAProxy"} {
		latency.Notes = append(latency.Notes, fmt.Sprintf("%s adds %s µs at p99 over the direct connection.", name, num(latency.Peer(name).Median()-direct)))
	}

	memory := &Comparison{
		Title: "portfwd vs HAProxy: memory per idle connection",
		What: common + fmt.Sprintf("Each run starts a fresh forwarder, reads its resident memory (VmRSS) after one connection, "+
			"then opens %d connections that each make one 1 KiB round trip and stay idle; after 500 ms VmRSS is read again. "+
			"Figure: KiB of growth per connection pair.", idle),
		Unit: "KiB", Reference: "HAProxy",
	}
	progs := map[string][]string{"portfwd": {e.portfwdBin}, "HAProxy": {"haproxy", "-db"}}
	var idleCS []contender
	for _, name := range []string{"portfwd", "HAProxy"} {
		idleCS = append(idleCS, contender{name: name, run: func() (float64, int, error) {
			addr, cmd, stop := startProxy(e, backend, health, progs[name][0], progs[name][1:]...)
			defer stop()
			return idleMemory(addr, cmd.Process.Pid, idle)
		}})
	}
	e.interleave(memory, e.rounds, "each run starts a fresh forwarder.", idleCS...)
	if checks.Load() == 0 {
		e.t.Fatal("no health check reached the health endpoint: the forwarders ran without checks")
	}
	return []*Comparison{throughput, rate, latency, memory}
}

func proxyContenders(peers []proxyPeer, f func(addr string) (float64, int, error)) []contender {
	var cs []contender
	for _, p := range peers {
		cs = append(cs, contender{name: p.name, pid: p.pid, run: func() (float64, int, error) { return f(p.addr) }})
	}
	return cs
}

func dial(addr string) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(opTimeout))
	return c.(*net.TCPConn), nil
}

// bulkRun sends n bytes through addr and reads n bytes back, at once.
func bulkRun(addr string, n int64) (float64, int, error) {
	c, err := dial(addr)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	t0 := time.Now()
	werr := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		left := n
		for left > 0 {
			k, err := c.Write(buf[:min(left, int64(len(buf)))])
			if err != nil {
				werr <- err
				return
			}
			left -= int64(k)
		}
		werr <- c.CloseWrite()
	}()
	got, err := io.Copy(io.Discard, c)
	if err == nil {
		err = <-werr
	}
	if err == nil && got != n {
		err = fmt.Errorf("received %d bytes, want %d", got, n)
	}
	return float64(2*n) / time.Since(t0).Seconds() / 1e6, 0, err
}

// echo1K sends 1 KiB on c and reads it back.
func echo1K(c *net.TCPConn, buf []byte) error {
	if _, err := c.Write(buf[:1024]); err != nil {
		return err
	}
	_, err := io.ReadFull(c, buf[1024:2048])
	return err
}

// connRate makes total connections through addr from workers clients.
func connRate(addr string, workers, total int) (float64, int, error) {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			for next.Add(1) <= int64(total) {
				c, err := dial(addr)
				if err == nil {
					err = echo1K(c, buf)
					c.Close()
				}
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f == int64(total) {
		return 0, int(f), errors.New("every connection failed")
	}
	return float64(total) / time.Since(t0).Seconds(), int(failed.Load()), nil
}

// roundTrips makes n round trips on each of conns held connections and
// returns every round-trip time in microseconds.
func roundTrips(addr string, conns, n int) ([]float64, error) {
	var mu sync.Mutex
	var all []float64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			buf := make([]byte, 2048)
			local := make([]float64, 0, n)
			for range n {
				t0 := time.Now()
				if err := echo1K(c, buf); err != nil {
					errs <- err
					return
				}
				local = append(local, float64(time.Since(t0).Nanoseconds())/1e3)
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	return all, <-errs
}

// idleMemory opens n connections through addr, makes one round trip on each,
// lets them idle, and returns the forwarder's memory growth per connection in
// KiB.
func idleMemory(addr string, pid, n int) (float64, int, error) {
	conns := make([]*net.TCPConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 2048)
	var before int64
	for i := range n {
		if i == 1 {
			time.Sleep(100 * time.Millisecond)
			var err error
			if before, err = ProcessRSS(pid); err != nil {
				return 0, 0, err
			}
		}
		c, err := dial(addr)
		if err != nil {
			return 0, 0, err
		}
		conns = append(conns, c)
		if err := echo1K(c, buf); err != nil {
			return 0, 0, err
		}
	}
	time.Sleep(500 * time.Millisecond)
	after, err := ProcessRSS(pid)
	if err != nil {
		return 0, 0, err
	}
	return float64(after-before) / 1024 / float64(n-1), 0, nil
}
