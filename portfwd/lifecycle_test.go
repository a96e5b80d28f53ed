package portfwd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestListenAndServe checks that ListenAndServe opens the binds itself,
// forwards, and returns ErrServerClosed after Shutdown.
func TestListenAndServe(t *testing.T) {
	be := serve(t, echo)
	fw, err := New(parse(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr())), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	served := make(chan error, 1)
	go func() { served <- fw.ListenAndServe() }()
	select {
	case <-fw.started:
	case err := <-served:
		t.Fatalf("ListenAndServe: %v", err)
	}
	c, err := net.Dial("tcp", addr(t, fw, "l"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "a")
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("echo through ListenAndServe: %v", err)
	}
	c.Close()
	if err := fw.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenAndServe = %v, want ErrServerClosed", err)
	}
}

// TestListenAndServeBindFails checks that a bind that cannot be opened ends
// ListenAndServe at once with that error, leaving the other binds closed.
func TestListenAndServeBindFails(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := reserve(t)
	fw, err := New(parse(t, fmt.Sprintf("frontend f\n bind %s\n bind %s\n", free, taken.Addr())), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	err = fw.ListenAndServe()
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("ListenAndServe = %v, want an error naming %s", err, taken.Addr())
	}
	if c, err := net.DialTimeout("tcp", free, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s accepts after ListenAndServe failed", free)
	}
}

// TestServeRefuses checks the listeners Serve will not take: it closes them
// and returns an error.
func TestServeRefuses(t *testing.T) {
	text := "frontend f\n bind 127.0.0.1:0\n bind [::1]:0\n bind 127.0.0.1:0\n"
	if got, want := parse(t, text).BindAddrs(), []string{"127.0.0.1:0", "[::1]:0"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("BindAddrs = %q, want %q", got, want)
	}
	oneBind := "frontend f\n bind 127.0.0.1:0\n"
	for _, tt := range []struct {
		name    string
		prepare func(t *testing.T, fw *Forwarder)
		ls      func(t *testing.T) []net.Listener
		want    string
	}{
		{"too few listeners", nil, func(t *testing.T) []net.Listener { return nil }, "0 listeners for 1 bind"},
		{"too many listeners", nil, func(t *testing.T) []net.Listener { return []net.Listener{tcpListener(t), tcpListener(t)} }, "2 listeners for 1 bind"},
		{"not TCP", nil, func(t *testing.T) []net.Listener { return []net.Listener{unixListener(t)} }, "not a *net.TCPListener"},
		{"after Close", func(t *testing.T, fw *Forwarder) { fw.Close() }, func(t *testing.T) []net.Listener { return []net.Listener{tcpListener(t)} }, ErrServerClosed.Error()},
		{"already serving", func(t *testing.T, fw *Forwarder) { serveInBackground(t, fw) }, func(t *testing.T) []net.Listener { return []net.Listener{tcpListener(t)} }, "already serving"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fw, err := New(parse(t, oneBind), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer fw.Close()
			if tt.prepare != nil {
				tt.prepare(t, fw)
			}
			ls := tt.ls(t)
			if err := fw.Serve(ls...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Serve = %v, want an error with %q", err, tt.want)
			}
			for _, l := range ls {
				if c, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
					if c != nil {
						c.Close()
					}
					t.Fatalf("listener %v not closed by Serve: Accept = %v", l.Addr(), err)
				}
			}
		})
	}
}

func tcpListener(t *testing.T) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func unixListener(t *testing.T) net.Listener {
	ln, err := net.Listen("unix", t.TempDir()+"/s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestShutdownContextEnds checks that Shutdown returns ctx.Err() when ctx
// ends before the connections, leaving them open until Close.
func TestShutdownContextEnds(t *testing.T) {
	be := serve(t, echo)
	fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr()))
	c, err := net.Dial("tcp", addr(t, fw, "l"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "a")
	io.ReadFull(c, make([]byte, 1))

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := fw.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
	}
	io.WriteString(c, "b")
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("connection cut by a Shutdown whose context ended: %v", err)
	}
	if err := fw.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d, %v after Close; want the connection closed", n, err)
	}
}
