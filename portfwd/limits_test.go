package portfwd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestMaxconnQueue fills a server's single slot, lets a second client time
// out in the queue, and after a reload queues a third until the first
// leaves.
func TestMaxconnQueue(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf(`
listen l
    bind 127.0.0.1:0
    timeout queue 300ms
    server s %s maxconn 1
`, be.addr()))
	front := addr(t, fw, "l")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	roundTrip := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, "x"); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	first := dial()
	if err := roundTrip(first); err != nil {
		t.Fatal(err)
	}

	// A client that waits out the queue timeout is closed without reaching
	// the server.
	late := dial()
	eventually(t, "a queued connection", func() bool { return backendStats(fw, "l").Queue == 1 })
	if err := roundTrip(late); err == nil {
		t.Fatal("a connection past timeout queue got through")
	}
	if n := be.accepted(); n != 1 {
		t.Fatalf("server accepted %d connections, want 1", n)
	}

	// A reload (here to a longer queue timeout) keeps the server's slot
	// accounting: a queued client gets the slot when the first one leaves.
	if err := fw.Reload(t.Context(), parse(t, fmt.Sprintf(`
listen l
    bind 127.0.0.1:0
    timeout queue 1m
    server s %s maxconn 1
`, be.addr()))); err != nil {
		t.Fatal(err)
	}
	second := dial()
	eventually(t, "a queued connection", func() bool { return backendStats(fw, "l").Queue == 1 })
	done := make(chan error, 1)
	go func() { done <- roundTrip(second) }()
	first.Close()
	if err := <-done; err != nil {
		t.Fatalf("queued connection: %v", err)
	}
}

func TestMaxqueueBound(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf(`
listen l
    bind 127.0.0.1:0
    server s %s maxconn 1 maxqueue 1
`, be.addr()))
	front := addr(t, fw, "l")
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	eventually(t, "a full queue", func() bool { return backendStats(fw, "l").Queue == 1 })
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d, %v past maxqueue; want the connection closed", n, err)
	}
}

func TestFrontendMaxconn(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf(`
frontend fe
    bind 127.0.0.1:0
    maxconn 1
    default_backend be
backend be
    server s %s
`, be.addr()))
	front := addr(t, fw, "fe")
	first, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "a")
	io.ReadFull(first, make([]byte, 1))
	// The second client waits in the kernel backlog: connected, unserved.
	heldBackUntilClosed(t, front, first, "maxconn 1 was reached")
}

// TestSourceQueuesForItsServer: with balance source a client's address assigns it
// a server, as in HAProxy; when that server is at maxconn the connection waits in
// the server's own queue (ServerStats.Queue) although another server is free, and
// gets the server once its slot frees. The backend queue (for any server) stays
// empty.
func TestSourceQueuesForItsServer(t *testing.T) {
	a := serve(t, named("a"))
	b := serve(t, named("b"))
	fw := start(t, fmt.Sprintf(`
listen l
    bind 127.0.0.1:0
    balance source
    server a %s maxconn 1 maxqueue 1
    server b %s maxconn 1 maxqueue 1
`, a.addr(), b.addr()))
	front := addr(t, fw, "l")
	first, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	r1 := bufio.NewReader(first)
	io.WriteString(first, "hi\n")
	owner, err := r1.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	owner = strings.TrimSpace(owner)
	other := map[string]string{"a": "b", "b": "a"}[owner]

	// Same address, so the same server: it waits although the other is free.
	answer := make(chan string, 1)
	go func() {
		got, err := ask(front)
		if err != nil {
			got = "error: " + err.Error()
		}
		answer <- got
	}()
	eventually(t, "a connection queued for "+owner, func() bool { return serverStats(fw, "l", owner).Queue == 1 })
	if q := backendStats(fw, "l").Queue; q != 0 {
		t.Fatalf("backend queue %d, want 0 (the waiting connection belongs to %s)", q, owner)
	}
	if s := serverStats(fw, "l", other); s.Total != 0 || s.Queue != 0 {
		t.Fatalf("server %s got traffic meant for %s: %+v", other, owner, s)
	}
	// The server's maxqueue of 1 is reached: a third connection is refused.
	third, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	third.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := third.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d, %v past the server's maxqueue; want the connection closed", n, err)
	}
	first.Close()
	select {
	case got := <-answer:
		if got != owner {
			t.Fatalf("queued connection answered by %q, want %q", got, owner)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the queued connection never got its server")
	}
	eventually(t, "an empty queue", func() bool { return serverStats(fw, "l", owner).Queue == 0 })
}
