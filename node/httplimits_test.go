package node

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mirror"
)

// TestSlowBodiesAreCut: clients that send their headers and then drip a body
// one byte at a time to the unauthenticated mirror registration endpoint are
// disconnected once HTTPReadTimeout has passed (each would otherwise hold a
// connection and a goroutine for as long as it likes).
func TestSlowBodiesAreCut(t *testing.T) {
	home := gitfleet.Home(t.TempDir())
	cfg := testConfig(t, home)
	n := &Node{Home: home, Config: cfg, State: mirror.NewMemoryState(), HTTPReadTimeout: time.Second}
	serve(t, n)
	t.Cleanup(func() { n.Close() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Server.Port))
	const clients = 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %smirrorServers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", PathMirroring)
			closed := make(chan struct{})
			go func() {
				io.Copy(io.Discard, c) // returns when the server closes the connection
				close(closed)
			}()
			deadline := time.After(20 * time.Second)
			for {
				select {
				case <-closed:
					return
				case <-deadline:
					errs <- fmt.Errorf("a dripping client still connected after 20 s")
					return
				case <-time.After(200 * time.Millisecond):
					c.Write([]byte("{"))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRequestBodyLimit: a body declared over MaxRequestBody is refused with
// 413 before it is read.
func TestRequestBodyLimit(t *testing.T) {
	home := gitfleet.Home(t.TempDir())
	cfg := testConfig(t, home)
	n := &Node{Home: home, Config: cfg, State: mirror.NewMemoryState(), MaxRequestBody: 1024}
	serve(t, n)
	t.Cleanup(func() { n.Close() })
	resp, err := http.Post(LocalURL(cfg)+PathMirroring+"mirrorServers", "application/json", strings.NewReader(strings.Repeat("x", 4096)))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "limit of 1024") {
		t.Fatalf("over-limit body: %d %q", resp.StatusCode, body)
	}
}

// TestHTTPConnectionCap: with MaxHTTPConnections open, a further connection
// waits; once one closes, it is served.
func TestHTTPConnectionCap(t *testing.T) {
	home := gitfleet.Home(t.TempDir())
	cfg := testConfig(t, home)
	const limit = 8
	n := &Node{Home: home, Config: cfg, State: mirror.NewMemoryState(), MaxHTTPConnections: limit}
	serve(t, n)
	t.Cleanup(func() { n.Close() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Server.Port))
	var idle []net.Conn
	for range limit {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); n.HTTPConnections() != limit; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", n.HTTPConnections(), limit)
		}
	}
	extra, err := net.Dial("tcp", addr) // the kernel completes it; the server does not take it yet
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	fmt.Fprintf(extra, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", PathLive)
	answered := make(chan error, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(extra), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("a connection over the cap was served (%v)", err)
	case <-time.After(500 * time.Millisecond):
	}
	if got := n.HTTPConnections(); got != limit {
		t.Fatalf("%d connections open over a cap of %d", got, limit)
	}
	idle[0].Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("the waiting connection: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting connection was not served after a slot freed")
	}
}
