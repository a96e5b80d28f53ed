package portfwd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestTunnelAndFinTimeouts checks timeout tunnel, client-fin and server-fin
// on a connection that goes idle, open or half-closed.
func TestTunnelAndFinTimeouts(t *testing.T) {
	tests := []struct {
		name      string
		timeouts  string
		halfClose bool // the client shuts down its output before idling
		wantCut   bool
	}{
		{"tunnel replaces client and server", "timeout client 1h\n timeout server 1h\n timeout tunnel 300ms", false, true},
		{"client-fin after a half-close", "timeout client 1h\n timeout server 1h\n timeout client-fin 300ms", true, true},
		{"server-fin after a half-close", "timeout client 1h\n timeout server 1h\n timeout server-fin 300ms", true, true},
		{"client-fin does not apply while open", "timeout client 1h\n timeout server 1h\n timeout client-fin 300ms", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// The server reads to EOF and then holds the connection open.
			release := make(chan struct{})
			defer close(release)
			be := serve(t, func(c net.Conn) {
				io.Copy(io.Discard, c)
				<-release
			})
			fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n %s\n server s %s\n", tt.timeouts, be.addr()))
			c, err := net.Dial("tcp", addr(t, fw, "l"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "x")
			if tt.halfClose {
				c.(*net.TCPConn).CloseWrite()
			}
			wait := 10 * time.Second
			if !tt.wantCut {
				wait = 1500 * time.Millisecond // five times the short timeout
			}
			c.SetReadDeadline(time.Now().Add(wait))
			_, err = c.Read(make([]byte, 1))
			var ne net.Error
			timedOut := errors.As(err, &ne) && ne.Timeout()
			if tt.wantCut && timedOut {
				t.Fatal("idle connection was not closed")
			}
			if !tt.wantCut && !timedOut {
				t.Fatalf("connection closed (%v) by a timeout that does not apply", err)
			}
		})
	}
}

func TestGlobalMaxconn(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf(`
global
    maxconn 1
frontend a
    bind 127.0.0.1:0
    default_backend be
frontend b
    bind 127.0.0.1:0
    default_backend be
backend be
    server s %s
`, be.addr()))
	first, err := net.Dial("tcp", addr(t, fw, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "a")
	io.ReadFull(first, make([]byte, 1))
	// A client of the other frontend waits: the limit is process-wide.
	heldBackUntilClosed(t, addr(t, fw, "b"), first, "global maxconn 1 was reached")
}

// TestLeastConn holds connections on one server and checks new ones go to
// the others.
func TestLeastConn(t *testing.T) {
	a := serve(t, named("a"))
	b := serve(t, named("b"))
	fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n balance leastconn\n server a %s\n server b %s\n", a.addr(), b.addr()))
	front := addr(t, fw, "l")
	// Open two held connections: leastconn spreads them, one per server.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", front)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "hi\n")
		io.ReadFull(c, make([]byte, 2))
		held = append(held, c)
	}
	if sa, sb := serverStats(fw, "l", "a"), serverStats(fw, "l", "b"); sa.Current != 1 || sb.Current != 1 {
		t.Fatalf("held connections: a %d, b %d; want one each", sa.Current, sb.Current)
	}
	// Free server b's slot: the next connection must go to b.
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	held[1].Close()
	eventually(t, "b's connection to end", func() bool {
		return serverStats(fw, "l", "a").Current+serverStats(fw, "l", "b").Current == 1
	})
	want := "b"
	if serverStats(fw, "l", "a").Current == 0 {
		want = "a"
	}
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "hi\n")
	got := make([]byte, 2)
	io.ReadFull(c, got)
	if string(got) != want+"\n" {
		t.Fatalf("leastconn chose %q, want the idle server %q", got, want)
	}
}
