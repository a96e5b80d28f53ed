package portfwd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"golang.org/x/sys/unix"
)

// TestLoopCarriesConnections checks that a plain connection goes through an
// event loop, and that its bytes show in Stats while it is open.
func TestLoopCarriesConnections(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr()))
	c, err := net.Dial("tcp", addr(t, fw, "l"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := bytes.Repeat([]byte("x"), 100)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, msg); err != nil {
		t.Fatal(err)
	}
	if n := fw.loopAdded.Load(); n != 1 {
		t.Fatalf("event loops took %d connections, want 1", n)
	}
	// Both sockets send small writes at once: the client's inherits
	// TCP_NODELAY from the listener, the server's sets it.
	var fds []int
	for _, l := range fw.loops {
		l.mu.Lock()
		for lc := range l.conns {
			fds = append(fds, lc.client.fd, lc.server.fd)
		}
		l.mu.Unlock()
	}
	if len(fds) != 2 {
		t.Fatalf("the loops hold %d sockets, want 2", len(fds))
	}
	for _, fd := range fds {
		if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY); err != nil || v == 0 {
			t.Fatalf("TCP_NODELAY on socket %d = %d, %v; want on", fd, v, err)
		}
	}
	s := serverStats(fw, "l", "s")
	if s.Current != 1 || s.BytesIn != 100 || s.BytesOut != 100 {
		t.Fatalf("stats of the open connection: %+v; want current 1, 100 bytes each way", s)
	}
}

// TestLoopChunkPatterns sends traffic of several shapes through the loop at
// once, from small exchanges that stay in the loop to bulk transfers that it
// hands to splicing goroutines while bytes are still pending either way, and
// checks that every byte arrives in order.
func TestLoopChunkPatterns(t *testing.T) {
	fw := testChunkPatterns(t)
	if fw.loopAdded.Load() == 0 || fw.loopBulk.Load() == 0 {
		t.Fatalf("loop took %d connections and handed %d over; want both", fw.loopAdded.Load(), fw.loopBulk.Load())
	}
}

// TestLoopConnectTimeout points a backend at a listener whose accept queue
// is full, so connects hang: the loop's "timeout connect" must hand the
// connection to the retries, which fail the same way, and the client must be
// closed.
func TestLoopConnectTimeout(t *testing.T) {
	stuck := fullListener(t)
	fw := start(t, fmt.Sprintf(`
listen l
    bind 127.0.0.1:0
    timeout connect 200ms
    retries 1
    server s %s
`, stuck))
	c, err := net.Dial("tcp", addr(t, fw, "l"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read data from a server that never accepted")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("closed after %v, before two connect timeouts of 200ms", d)
	}
	if fw.loopRetry.Load() != 1 {
		t.Fatalf("loop handed %d connections to the retries, want 1", fw.loopRetry.Load())
	}
	if s := serverStats(fw, "l", "s"); s.ConnectErrors != 2 || s.Current != 0 {
		t.Fatalf("server stats %+v; want 2 connect errors, no connection", s)
	}
}

// fullListener returns the address of a loopback listener with a backlog of
// zero and its accept queue filled, so that further SYNs are dropped.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue: connect until one does not complete.
	for i := range 8 {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			if i == 0 {
				t.Fatalf("first connect to the listener: %v", err)
			}
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("the listener's accept queue never filled")
	return ""
}

// TestLoopSendProxy checks the PROXY header the loop sends ahead of the
// client's bytes, in both versions.
func TestLoopSendProxy(t *testing.T) {
	for _, v := range []string{"send-proxy", "send-proxy-v2"} {
		t.Run(v, func(t *testing.T) {
			got := make(chan string, 1)
			be := serve(t, func(c net.Conn) {
				r := bufio.NewReader(c)
				h, err := proxyproto.Read(r)
				if err != nil {
					got <- err.Error()
					return
				}
				line, _ := r.ReadString('\n')
				got <- h.SourceAddr.String() + " " + line
				io.WriteString(c, "ok\n")
			})
			fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s %s\n", be.addr(), v))
			c, err := net.Dial("tcp", addr(t, fw, "l"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "hello\n")
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			if want := c.LocalAddr().String() + " hello\n"; <-got != want {
				t.Fatalf("server saw a different header or data; want %q", want)
			}
			if fw.loopAdded.Load() != 1 {
				t.Fatal("the connection did not go through an event loop")
			}
		})
	}
}

// TestCloseEndsLoopConnections checks that Close ends open loop connections
// at once and leaves nothing counted.
func TestCloseEndsLoopConnections(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr()))
	var conns []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", addr(t, fw, "l"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("x"))
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	fw.Close()
	for i, c := range conns {
		if n, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatalf("connection %d still open after Close (read %d bytes)", i, n)
		}
	}
	if h := fw.handlers.Load(); h != 0 {
		t.Fatalf("%d connections still counted after Close", h)
	}
	if s := serverStats(fw, "l", "s"); s.Current != 0 {
		t.Fatalf("server still counts %d connections", s.Current)
	}
}

// loopSocket returns a non-blocking socket connected to a peer accepted by
// the test, with small buffers towards the peer, so that a few kilobytes fill
// them, and a receive buffer of rcvbuf bytes.
func loopSocket(t *testing.T, rcvbuf int) (int, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, _ := ln.SyscallConn()
	raw.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096)
	syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
	port := ln.Addr().(*net.TCPAddr).Port
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil && err != syscall.EINPROGRESS {
		t.Fatal(err)
	}
	peer, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return fd, peer
}

// waitFD waits until fd is readable (or writable) and, for reads, holds at
// least min bytes.
func waitFD(t *testing.T, fd int, write bool, min int) {
	t.Helper()
	ev := int16(unix.POLLIN)
	if write {
		ev = unix.POLLOUT
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: ev}}
		if n, _ := unix.Poll(pfd, 100); n == 1 {
			if write {
				return
			}
			if q, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err == nil && q >= min {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("socket %d never became ready", fd)
}

// testConn builds a loop connection between two small-buffered sockets for
// driving pump and handoff directly, with the slots and counters a real
// connection holds.
func testConn(t *testing.T) (*lconn, *net.TCPConn, *net.TCPConn) {
	fw := start(t, "listen l\n bind 127.0.0.1:0\n server s 127.0.0.1:9\n")
	cfd, cpeer := loopSocket(t, 256<<10)
	sfd, speer := loopSocket(t, 4096)
	fe, b := fw.frontends["l"], fw.backends["l"]
	a, _ := b.tryAcquire(nil)
	s, bcfg := a.s, a.bcfg
	l := &evloop{f: fw, buf: make([]byte, loopBuf), sides: map[uint64]*lside{}, conns: map[*lconn]struct{}{}}
	c := &lconn{l: l, fe: fe, b: b, bcfg: bcfg, scfg: a.cfg, s: s, src: &net.TCPAddr{}, tmo: newIdleTimeouts(fe.cfg.Timeouts, bcfg.Timeouts)}
	c.client = lside{c: c, fd: cfd, writable: true}
	c.server = lside{c: c, fd: sfd, writable: true}
	fe.cur.Add(1)
	b.cur.Add(1)
	fw.handlers.Add(1)
	return c, cpeer, speer
}

// TestPumpBackpressure drives pump with a server that does not read: the
// bytes it cannot take wait in the loop, the client is not read meanwhile,
// and when the server reads again everything arrives in order, followed by
// the client's FIN.
func TestPumpBackpressure(t *testing.T) {
	c, cpeer, speer := testConn(t)
	var sent []byte
	chunk := make([]byte, 1000)
	for i := 0; len(c.server.pend) == 0; i++ {
		if i == 10000 {
			t.Fatal("the server side never filled up")
		}
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		sent = append(sent, chunk...)
		cpeer.Write(chunk)
		waitFD(t, c.client.fd, false, len(chunk))
		c.client.readable = true
		c.pump(&c.client, &c.server, &c.in, 0)
	}
	if c.server.writable {
		t.Fatal("bytes are pending but the server side is marked writable")
	}
	// One more chunk must stay in the client's socket while bytes wait.
	sent = append(sent, chunk...)
	cpeer.Write(chunk)
	waitFD(t, c.client.fd, false, len(chunk))
	c.client.readable = true
	c.pump(&c.client, &c.server, &c.in, 0)
	if q, _ := unix.IoctlGetInt(c.client.fd, unix.SIOCINQ); q != len(chunk) {
		t.Fatalf("the client was read while bytes were pending (%d bytes left in its socket)", q)
	}
	cpeer.CloseWrite()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(speer)
		got <- b
	}()
	for !c.server.shut {
		waitFD(t, c.server.fd, true, 0)
		c.server.writable = true
		c.client.readable, c.client.rdhup = true, true
		c.pump(&c.client, &c.server, &c.in, 0)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, sent) {
			t.Fatalf("server received %d bytes, not the %d sent in order", len(b), len(sent))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the end of input")
	}
	c.close()
}

// TestHandoffCarriesPendingBytes fills the client side with server bytes the
// client does not read, then has the client send a bulk: the loop hands the
// pair to splicing goroutines, which must deliver the pending bytes before
// the rest, both ways.
func TestHandoffCarriesPendingBytes(t *testing.T) {
	c, cpeer, speer := testConn(t)
	var toClient []byte
	chunk := make([]byte, 1000)
	for i := 0; len(c.client.pend) == 0; i++ {
		if i == 10000 {
			t.Fatal("the client side never filled up")
		}
		for j := range chunk {
			chunk[j] = byte(3*i + j)
		}
		toClient = append(toClient, chunk...)
		speer.Write(chunk)
		waitFD(t, c.server.fd, false, len(chunk))
		c.server.readable = true
		c.pump(&c.server, &c.client, &c.out, 0)
	}
	bulk := make([]byte, 3*loopBuf)
	for i := range bulk {
		bulk[i] = byte(i * 7)
	}
	go cpeer.Write(bulk)
	waitFD(t, c.client.fd, false, loopBuf)
	c.client.readable = true
	c.pump(&c.client, &c.server, &c.in, 0)
	if !c.done || c.l.f.loopBulk.Load() != 1 {
		t.Fatal("a full read did not hand the connection over")
	}
	// The rest of the server's stream, then both ends finish.
	more := bytes.Repeat([]byte("tail"), 5000)
	toClient = append(toClient, more...)
	go func() {
		speer.Write(more)
		speer.CloseWrite()
	}()
	fromServer := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(cpeer)
		fromServer <- b
	}()
	atServer := make([]byte, len(bulk))
	speer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(speer, atServer); err != nil || !bytes.Equal(atServer, bulk) {
		t.Fatalf("server received the client's bulk wrong: %v", err)
	}
	cpeer.CloseWrite()
	select {
	case b := <-fromServer:
		if !bytes.Equal(b, toClient) {
			t.Fatalf("client received %d bytes, not the %d the server sent, in order", len(b), len(toClient))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client never saw the end of the server's stream")
	}
	eventually(t, "the handed-over pair to finish", func() bool { return c.l.f.handlers.Load() == 0 })
}

func TestRawAddrOf(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		family int
	}{
		{"127.0.0.1:7999", unix.AF_INET},
		{"[::ffff:127.0.0.1]:7999", unix.AF_INET},
		{"[::1]:7999", unix.AF_INET6},
		{"localhost:7999", 0},
		{"[fe80::1%eth0]:7999", 0},
	} {
		a := rawAddrOf(tt.addr)
		switch {
		case tt.family == 0 && a != nil:
			t.Errorf("%s: got a socket address, want the goroutine way", tt.addr)
		case tt.family != 0 && (a == nil || a.family != tt.family):
			t.Errorf("%s: got %+v, want family %d", tt.addr, a, tt.family)
		case a != nil && (a.buf[2] != 7999>>8 || a.buf[3] != 7999&0xff):
			t.Errorf("%s: port bytes %x, want network order", tt.addr, a.buf[2:4])
		}
	}
}

// TestLoopIPv6 forwards over IPv6 loopback through the loop, with a v1 PROXY
// header carrying the IPv6 client address.
func TestLoopIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatalf("IPv6 loopback: %v", err)
	}
	got := make(chan string, 1)
	be := serveOn(t, ln, func(c net.Conn) {
		r := bufio.NewReader(c)
		h, err := proxyproto.Read(r)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- h.SourceAddr.String()
		io.Copy(c, r)
	})
	fw := start(t, fmt.Sprintf("listen l\n bind [::1]:0\n server s %s send-proxy\n", be.addr()))
	c, err := net.Dial("tcp6", addr(t, fw, "l"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	if src := <-got; src != c.LocalAddr().String() {
		t.Fatalf("server saw client %s, want %s", src, c.LocalAddr())
	}
	if fw.loopAdded.Load() != 1 {
		t.Fatal("the connection did not go through an event loop")
	}
}
