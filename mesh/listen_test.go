package mesh_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestListenFallback(t *testing.T) {
	ctx := context.Background()
	held := testutil.Listen(t)
	port := held.Addr().(*net.TCPAddr).Port
	var logs lockedBuffer
	l, err := mesh.Listen(ctx, port, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := l.Addr().(*net.TCPAddr)
	if got.Port == port || !got.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("fallback listener on %v (configured port %d held)", got, port)
	}
	if s := logs.String(); !strings.Contains(s, "configured="+strconv.Itoa(port)) || !strings.Contains(s, "port="+strconv.Itoa(got.Port)) {
		t.Errorf("fallback log lacks both ports: %s", s)
	}
	// A free port is used as it is.
	free := freePort(t)
	l2, err := mesh.Listen(ctx, free, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if p := l2.Addr().(*net.TCPAddr).Port; p != free {
		t.Errorf("listening on %d, want %d", p, free)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "10.1.2.3:0", "192.168.0.1:7777", "localhost:0", "example.com:0", "[fe80::1%lo]:0", "127.0.0.1"} {
		l, err := mesh.ListenAddr(context.Background(), addr, nil)
		if err == nil {
			l.Close()
			t.Errorf("ListenAddr(%q) succeeded", addr)
			continue
		}
		if addr != "127.0.0.1" && !errors.Is(err, mesh.ErrNotLoopback) {
			t.Errorf("ListenAddr(%q) = %v, want ErrNotLoopback", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:0"} {
		l, err := mesh.ListenAddr(context.Background(), addr, nil)
		if err != nil {
			t.Errorf("ListenAddr(%q): %v", addr, err)
			continue
		}
		l.Close()
	}
}
