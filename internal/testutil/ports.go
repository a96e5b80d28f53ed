package testutil

import (
	"net"
	"testing"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. Prefer
// Listen where the code under test accepts a listener: a port can be taken by
// someone else between FreePort and its use.
func FreePort(t testing.TB) int {
	t.Helper()
	l := Listen(t)
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// Listen returns a TCP listener on a free port of 127.0.0.1, closed at test end.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	return ListenOn(t, "127.0.0.1:0")
}

// ListenOn returns a TCP listener on addr (a loopback address), closed at test end.
func ListenOn(t testing.TB, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
