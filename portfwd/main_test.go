package portfwd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(helperMain(cfg))
	}
	testutil.VerifyMain(m)
}

// helperEnv names a configuration file; with it set, the test binary runs a
// Forwarder instead of the tests (for strace and memory measurements). It
// prints "ready" and runs until its standard input closes.
const helperEnv = "PORTFWD_TEST_HELPER_CONFIG"

func helperMain(path string) int {
	cfg, err := ParseFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fw, err := New(cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ls, err := cfg.Listen(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- fw.Serve(ls...) }()
	select {
	case <-fw.started:
	case err := <-served:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if path := os.Getenv(helperProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	fw.Close()
	<-served
	return 0
}

// helperProfileEnv, when set in the benchmark's environment, makes the helper
// forwarder write a CPU profile to that path, for finding its per-connection cost:
//
//	PORTFWD_TEST_HELPER_CPUPROFILE=/tmp/fw.prof go test -run '^$' -bench ConnRate/portfwd ./portfwd
const helperProfileEnv = "PORTFWD_TEST_HELPER_CPUPROFILE"

// parse parses a configuration given as text, failing the test on error.
func parse(t testing.TB, text string) *Config {
	t.Helper()
	cfg, err := ParseConfig(strings.NewReader(text), "test.cfg")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

// testNoLoops makes start's Forwarders forward every connection with
// goroutines (see TestGoroutinePath).
var testNoLoops bool

// start runs a Forwarder for the configuration text, closed at test end.
func start(t testing.TB, text string) *Forwarder {
	t.Helper()
	fw, err := New(parse(t, text), nil)
	if err != nil {
		t.Fatal(err)
	}
	fw.noLoops = testNoLoops
	serveInBackground(t, fw)
	if off := testNoLoops || !loopsAvailable; off != (len(fw.loops) == 0) {
		t.Fatalf("event loops: %d, want them off: %v", len(fw.loops), off)
	}
	return fw
}

// serveInBackground runs fw.Serve on listeners opened for fw's configuration
// and returns once fw serves. At test end it closes fw and checks that Serve
// returned ErrServerClosed.
func serveInBackground(t testing.TB, fw *Forwarder) {
	t.Helper()
	ls, err := fw.cfg.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- fw.Serve(ls...) }()
	select {
	case <-fw.started:
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	}
	t.Cleanup(func() {
		fw.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v after Close, want ErrServerClosed", err)
		}
	})
}

// addr returns the first bound address of frontend.
func addr(t testing.TB, fw *Forwarder, frontend string) string {
	t.Helper()
	a := fw.Addrs(frontend)
	if len(a) == 0 {
		t.Fatalf("frontend %s has no bound address", frontend)
	}
	return a[0].String()
}

// backendServer is a loopback TCP server run by a handler per connection.
type backendServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	cons map[net.Conn]bool
	seen int
}

func serve(t testing.TB, handler func(net.Conn)) *backendServer {
	t.Helper()
	return serveOn(t, testutil.Listen(t), handler)
}

func serveOn(t testing.TB, ln net.Listener, handler func(net.Conn)) *backendServer {
	s := &backendServer{ln: ln, cons: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.cons[c] = true
			s.seen++
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.cons, c)
					s.mu.Unlock()
					c.Close()
				}()
				handler(c)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *backendServer) addr() string { return s.ln.Addr().String() }

func (s *backendServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen
}

func (s *backendServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.cons {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// echo copies input back until EOF, then closes.
func echo(c net.Conn) { io.Copy(c, c) }

// named answers each line with its name.
func named(name string) func(net.Conn) {
	return func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				return
			}
			if _, err := io.WriteString(c, name+"\n"); err != nil {
				return
			}
		}
	}
}

// ask sends a line on a new connection to addr and returns the answer line,
// or "" and the error when the connection ends first.
func ask(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	return fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
}

// eventually polls cond until it holds or 10 seconds pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func serverStats(fw *Forwarder, backend, server string) ServerStats {
	for _, b := range fw.Stats().Backends {
		if b.Name != backend {
			continue
		}
		for _, s := range b.Servers {
			if s.Name == server {
				return s
			}
		}
	}
	return ServerStats{}
}

func backendStats(fw *Forwarder, backend string) BackendStats {
	for _, b := range fw.Stats().Backends {
		if b.Name == backend {
			return b
		}
	}
	return BackendStats{}
}

// heldBackUntilClosed connects a second client to addr while first holds the only
// slot that limit allows: the second is connected but unserved (a one-byte echo
// does not come back) until first closes, and then served.
func heldBackUntilClosed(t testing.TB, addr string, first net.Conn, limit string) {
	t.Helper()
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	io.WriteString(second, "b")
	second.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatalf("second connection served while %s", limit)
	}
	first.Close()
	second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(second, make([]byte, 1)); err != nil {
		t.Fatalf("second connection after the first left: %v", err)
	}
}
