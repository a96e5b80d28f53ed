package portfwd

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestForwardBothWays(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf(`
frontend fe
    bind 127.0.0.1:0
    default_backend be
backend be
    server s1 %s
`, be.addr()))
	c, err := net.Dial("tcp", addr(t, fw, "fe"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 4<<20)
	rand.Read(payload)
	var got []byte
	done := make(chan error, 1)
	go func() {
		var err error
		got, err = io.ReadAll(c)
		done <- err
	}()
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(payload))
	}
	eventually(t, "byte counters", func() bool {
		s := serverStats(fw, "be", "s1")
		return s.BytesIn == int64(len(payload)) && s.BytesOut == int64(len(payload)) && s.Total == 1
	})
}

// TestHalfClose checks that a shutdown of either side's output reaches the
// other side while the opposite direction keeps working.
func TestHalfClose(t *testing.T) {
	tests := []struct {
		name        string
		clientFirst bool
	}{
		{"client shuts down first", true},
		{"server shuts down first", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			result := make(chan string, 1)
			be := serve(t, func(c net.Conn) {
				tc := c.(*net.TCPConn)
				if tt.clientFirst {
					// Read to EOF (the client's FIN), then answer.
					b, _ := io.ReadAll(tc)
					io.WriteString(tc, "got "+string(b))
					tc.CloseWrite()
					return
				}
				// Send and shut down first, then keep reading.
				io.WriteString(tc, "early")
				tc.CloseWrite()
				b, _ := io.ReadAll(tc)
				result <- string(b)
			})
			fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr()))
			c, err := net.Dial("tcp", addr(t, fw, "l"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc := c.(*net.TCPConn)
			if tt.clientFirst {
				io.WriteString(tc, "request")
				tc.CloseWrite()
				b, err := io.ReadAll(tc)
				if err != nil || string(b) != "got request" {
					t.Fatalf("read %q, %v; want %q", b, err, "got request")
				}
				return
			}
			b, err := io.ReadAll(tc) // ends at the server's FIN
			if err != nil || string(b) != "early" {
				t.Fatalf("read %q, %v; want %q", b, err, "early")
			}
			io.WriteString(tc, "late data")
			tc.CloseWrite()
			if got := <-result; got != "late data" {
				t.Fatalf("server read %q after its shutdown, want %q", got, "late data")
			}
		})
	}
}

// TestResetPassesThrough checks that a connection reset by one end reaches
// the other end as a reset, not as a clean end of input: a client that aborts
// must not look to the server like one that finished its request, nor the
// reverse.
func TestResetPassesThrough(t *testing.T) {
	for _, serverResets := range []bool{false, true} {
		name := map[bool]string{false: "client resets", true: "server resets"}[serverResets]
		t.Run(name, func(t *testing.T) {
			got := make(chan []byte, 1)
			result := make(chan error, 1)
			be := serve(t, func(c net.Conn) {
				tc := c.(*net.TCPConn)
				b := make([]byte, 5)
				if _, err := io.ReadFull(tc, b); err != nil {
					result <- err
					return
				}
				got <- b
				if serverResets {
					io.WriteString(tc, "reply")
					tc.SetLinger(0)
					tc.Close()
					return
				}
				tc.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := tc.Read(b)
				result <- err
			})
			fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr()))
			c, err := net.Dial("tcp", addr(t, fw, "l"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc := c.(*net.TCPConn)
			io.WriteString(tc, "hello")
			select {
			case <-got:
			case err := <-result:
				t.Fatalf("the server did not get the request: %v", err)
			}
			if serverResets {
				tc.SetReadDeadline(time.Now().Add(10 * time.Second))
				b, err := io.ReadAll(tc)
				if string(b) != "reply" || !isReset(err) {
					t.Fatalf("the client read %q, %v; want %q and then a reset", b, err, "reply")
				}
				return
			}
			tc.SetLinger(0)
			tc.Close()
			if err := <-result; !isReset(err) {
				t.Fatalf("the server's read after the client's reset: %v; want a reset", err)
			}
		})
	}
}

func TestBackendDownClosesAfterRetries(t *testing.T) {
	fw := start(t, fmt.Sprintf(`
defaults
    retries 2
    timeout connect 1s
listen l
    bind 127.0.0.1:0
    server dead %s
`, closedPort(t)))
	c, err := net.Dial("tcp", addr(t, fw, "l"))
	if err != nil {
		t.Fatalf("the client must be accepted even with its backend down: %v", err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !(errors.Is(err, io.EOF) || isReset(err)) {
		t.Fatalf("read %d, %v; want the connection closed", n, err)
	}
	if got := backendStats(fw, "l").ConnectErrors; got != 3 {
		t.Fatalf("connect errors = %d, want 3 (1 attempt + 2 retries)", got)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func TestFailoverToSecondServer(t *testing.T) {
	live := serve(t, named("live"))
	fw := start(t, fmt.Sprintf(`
backend be
    balance roundrobin
    server dead %s
    server live %s
frontend fe
    bind 127.0.0.1:0
    default_backend be
`, closedPort(t), live.addr()))
	for i := range 6 {
		got, err := ask(addr(t, fw, "fe"))
		if err != nil || got != "live" {
			t.Fatalf("connection %d: got %q, %v; want the live server", i, got, err)
		}
	}
	if s := serverStats(fw, "be", "dead"); s.ConnectErrors == 0 {
		t.Fatalf("the dead server was never tried: %+v", s)
	}
}

func TestBalance(t *testing.T) {
	a := serve(t, named("a"))
	b := serve(t, named("b"))
	c := serve(t, named("c"))
	tests := []struct {
		balance string
		weights [3]int
		want    func(counts map[string]int) bool
	}{
		{"roundrobin", [3]int{1, 1, 1}, func(n map[string]int) bool { return n["a"] == 4 && n["b"] == 4 && n["c"] == 4 }},
		{"roundrobin", [3]int{2, 1, 1}, func(n map[string]int) bool { return n["a"] == 6 && n["b"] == 3 && n["c"] == 3 }},
		{"first", [3]int{1, 1, 1}, func(n map[string]int) bool { return n["a"] == 12 }},
		{"source", [3]int{1, 1, 1}, func(n map[string]int) bool { return len(n) == 1 }},
		{"leastconn", [3]int{1, 1, 1}, func(n map[string]int) bool { return len(n) == 3 }},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %v", tt.balance, tt.weights), func(t *testing.T) {
			fw := start(t, fmt.Sprintf(`
listen l
    bind 127.0.0.1:0
    balance %s
    server a %s weight %d
    server b %s weight %d
    server c %s weight %d
`, tt.balance, a.addr(), tt.weights[0], b.addr(), tt.weights[1], c.addr(), tt.weights[2]))
			counts := map[string]int{}
			for range 12 {
				got, err := ask(addr(t, fw, "l"))
				if err != nil {
					t.Fatal(err)
				}
				counts[got]++
			}
			if !tt.want(counts) {
				t.Fatalf("distribution %v is wrong for %s", counts, tt.balance)
			}
		})
	}
}

// TestHealthChecks follows a server through up, down and up again, with a
// backup that takes the traffic only while the primary is down.
func TestHealthChecks(t *testing.T) {
	primaryLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	primaryAddr := primaryLn.Addr().String()
	primary := serveOn(t, primaryLn, named("primary"))
	backup := serve(t, named("backup"))
	fw := start(t, fmt.Sprintf(`
listen l
    bind 127.0.0.1:0
    timeout connect 1s
    server primary %s check inter 50ms rise 2 fall 2
    server spare %s check inter 50ms backup
`, primaryAddr, backup.addr()))
	front := addr(t, fw, "l")
	first := serverStats(fw, "l", "primary")
	if !first.Up || !first.Checked {
		t.Fatalf("checked server starts %+v, want up", first)
	}
	if got, _ := ask(front); got != "primary" {
		t.Fatalf("got %q while the primary is up", got)
	}

	primary.close()
	eventually(t, "the primary to go down", func() bool { return !serverStats(fw, "l", "primary").Up })
	down := serverStats(fw, "l", "primary")
	if down.CheckFailures < 2 || !down.LastChange.After(first.LastChange) {
		t.Fatalf("down state %+v: want >= 2 failed checks and a later last change", down)
	}
	if got, err := ask(front); got != "backup" {
		t.Fatalf("got %q, %v with the primary down; want the backup", got, err)
	}

	ln, err := net.Listen("tcp", primaryAddr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", primaryAddr, err)
	}
	serveOn(t, ln, named("primary"))
	eventually(t, "the primary to come back", func() bool { return serverStats(fw, "l", "primary").Up })
	if got, _ := ask(front); got != "primary" {
		t.Fatalf("got %q after the primary came back", got)
	}
}

// TestHealthCheckSendsLocalHeader checks that a send-proxy-v2 server's health
// check opens with a LOCAL PROXY header.
func TestHealthCheckSendsLocalHeader(t *testing.T) {
	headers := make(chan string, 8)
	be := serve(t, func(c net.Conn) {
		h, _, err := readProxyHeader(c.(*net.TCPConn), 5*time.Second)
		if err != nil {
			headers <- "error: " + err.Error()
			return
		}
		if h.Command.IsLocal() {
			headers <- "LOCAL"
			return
		}
		headers <- "PROXY"
	})
	start(t, fmt.Sprintf("backend b\n server s %s check inter 50ms send-proxy-v2\n", be.addr()))
	select {
	case got := <-headers:
		if got != "LOCAL" {
			t.Fatalf("health check sent %s, want a LOCAL header", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no health check arrived")
	}
}

func TestInactivityTimeouts(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf(`
listen l
    bind 127.0.0.1:0
    timeout client 1s
    timeout server 1s
    server s %s
`, be.addr()))
	front := addr(t, fw, "l")
	idle, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	idleDone := make(chan error, 1)
	go func() {
		idle.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := idle.Read(make([]byte, 1))
		idleDone <- err
	}()
	// The busy connection moves data every 50ms and outlives the idle one.
	for {
		busy.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(busy, "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(busy, make([]byte, 1)); err != nil {
			t.Fatalf("busy connection cut: %v", err)
		}
		select {
		case err := <-idleDone:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("idle connection was not closed by timeout client")
			}
			// and the busy one is still alive after it:
			io.WriteString(busy, "y")
			if _, err := io.ReadFull(busy, make([]byte, 1)); err != nil {
				t.Fatalf("busy connection cut: %v", err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestManySequentialConnections runs 10,000 connections one after another
// and checks that neither goroutines nor file descriptors accumulate.
func TestManySequentialConnections(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr()))
	front := addr(t, fw, "l")
	n := 10000
	run := func(count int) {
		buf := make([]byte, 64)
		for i := range count {
			c, err := net.Dial("tcp", front)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			c.Write(buf)
			c.(*net.TCPConn).CloseWrite()
			if got, err := io.ReadAll(c); err != nil || len(got) != len(buf) {
				t.Fatalf("connection %d: echoed %d bytes, %v", i, len(got), err)
			}
			c.Close()
		}
	}
	run(100) // warm up pools
	var g0, fd0 int
	settle := func() (int, int) {
		var g, fd int
		for range 100 {
			g, fd = runtime.NumGoroutine(), openFDs(t)
			if g <= g0 && fd <= fd0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return g, fd
	}
	g0, fd0 = runtime.NumGoroutine(), openFDs(t)
	run(n)
	g1, fd1 := settle()
	if g1 > g0+2 || fd1 > fd0+4 {
		t.Fatalf("after %d connections: goroutines %d -> %d, fds %d -> %d", n, g0, g1, fd0, fd1)
	}
	if got := fw.Stats().Frontends[0].Total; got != int64(n+100) {
		t.Fatalf("frontend total = %d, want %d", got, n+100)
	}
}

// TestReloadKeepsConnections reloads while connections stream data: none is
// cut, the kept bind keeps its socket, the removed one closes and the new
// one opens.
func TestReloadKeepsConnections(t *testing.T) {
	oldBE := serve(t, echo)
	newBE := serve(t, named("new"))
	keepLn, removeLn := reserve(t), reserve(t)
	fw := start(t, fmt.Sprintf(`
frontend fe
    bind %s
    bind %s
    default_backend be
backend be
    server s %s
`, keepLn, removeLn, oldBE.addr()))

	const streams = 8
	stop := make(chan struct{})
	errs := make(chan error, streams)
	var wg sync.WaitGroup
	for range streams {
		c, err := net.Dial("tcp", keepLn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1024)
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write(buf); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	eventually(t, "streams to start", func() bool { return fw.Stats().Frontends[0].Current == streams })

	addedLn := reserve(t)
	for i := range 5 {
		cfg := parse(t, fmt.Sprintf(`
frontend fe
    bind %s
    bind %s
    default_backend be
backend be
    server s %s
`, keepLn, addedLn, newBE.addr()))
		if i%2 == 1 { // alternate so that binds open and close repeatedly
			cfg = parse(t, fmt.Sprintf("frontend fe\n bind %s\n default_backend be\nbackend be\n server s %s\n", keepLn, newBE.addr()))
		}
		if err := fw.Reload(t.Context(), cfg); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	for range streams {
		if err := <-errs; err != nil {
			t.Fatalf("an established connection was cut by the reload: %v", err)
		}
	}
	if got, err := ask(keepLn); got != "new" {
		t.Fatalf("kept bind: got %q, %v; want the new backend", got, err)
	}
	if got, err := ask(addedLn); got != "new" {
		t.Fatalf("added bind: got %q, %v; want the new backend", got, err)
	}
	if c, err := net.DialTimeout("tcp", removeLn, time.Second); err == nil {
		c.Close()
		t.Fatal("removed bind still accepts")
	}
	if err := fw.Reload(t.Context(), parse(t, "backend b\n server s 127.0.0.1:1\nfrontend f\n bind "+oldBE.addr()+"\n default_backend b\n")); err == nil {
		t.Fatal("reload onto a bind in use succeeded")
	}
	if got, _ := ask(keepLn); got != "new" {
		t.Fatal("a failed reload changed the running configuration")
	}
}

// reserve returns a free loopback address.
func reserve(t testing.TB) string { return closedPort(t) }

func TestShutdownDrains(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr()))
	front := addr(t, fw, "l")
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "a")
	io.ReadFull(c, make([]byte, 1))

	done := make(chan error, 1)
	go func() { done <- fw.Shutdown(t.Context()) }()
	eventually(t, "the bind to close", func() bool {
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// The established connection still works during the drain.
	io.WriteString(c, "b")
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("connection cut by Shutdown: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a connection open", err)
	default:
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := fw.Serve(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown = %v, want ErrServerClosed", err)
	}
	if err := fw.ListenAndServe(); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe after Shutdown = %v, want ErrServerClosed", err)
	}
}

// TestCloseEndsServe checks that Close ends Serve with ErrServerClosed,
// closing established connections, and that a second Close and a Reload
// after it are harmless.
func TestCloseEndsServe(t *testing.T) {
	be := serve(t, echo)
	cfg := parse(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr()))
	fw, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := cfg.Listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.Serve(ls...) }()
	eventually(t, "Serve to listen", func() bool { return len(fw.Addrs("l")) == 1 })
	c, err := net.Dial("tcp", fw.Addrs("l")[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "a")
	io.ReadFull(c, make([]byte, 1))
	fw.Close()
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v, want ErrServerClosed", err)
	}
	// Close ended the established connection too.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d, %v after Serve ended; want the connection closed", n, err)
	}
	if err := fw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := fw.Reload(t.Context(), parse(t, "backend b\n")); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Reload after Close = %v", err)
	}
}

// TestReloadKeepsHealthState checks that a server whose name and address
// survive a reload keeps its health state.
func TestReloadKeepsHealthState(t *testing.T) {
	live := serve(t, named("live"))
	dead := closedPort(t)
	text := func(extra string) string {
		return fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server dead %s check inter 50ms fall 1\n server live %s\n%s", dead, live.addr(), extra)
	}
	fw := start(t, text(""))
	eventually(t, "the dead server to go down", func() bool { return !serverStats(fw, "l", "dead").Up })
	changed := serverStats(fw, "l", "dead").LastChange
	if err := fw.Reload(t.Context(), parse(t, text(" server other "+live.addr()+"\n"))); err != nil {
		t.Fatal(err)
	}
	if s := serverStats(fw, "l", "dead"); s.Up || !s.LastChange.Equal(changed) {
		t.Fatalf("after reload the dead server is %+v; want still down since %v", s, changed)
	}
	if s := serverStats(fw, "l", "other"); !s.Up {
		t.Fatalf("new server %+v should start up", s)
	}
}
