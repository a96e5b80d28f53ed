package portfwd

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// TestGoroutinePath runs behaviour tests with the event loops off, so that
// the goroutine way, which takes accept-proxy binds, queued and retried
// connections, stays covered for plain connections too.
func TestGoroutinePath(t *testing.T) {
	testNoLoops = true
	defer func() { testNoLoops = false }()
	for name, test := range map[string]func(*testing.T){
		"ForwardBothWays":           TestForwardBothWays,
		"HalfClose":                 TestHalfClose,
		"ResetPassesThrough":        TestResetPassesThrough,
		"InactivityTimeouts":        TestInactivityTimeouts,
		"TunnelAndFinTimeouts":      TestTunnelAndFinTimeouts,
		"ManySequentialConnections": TestManySequentialConnections,
		"ShutdownDrains":            TestShutdownDrains,
		"ChunkPatterns":             func(t *testing.T) { testChunkPatterns(t) },
	} {
		t.Run(name, test)
	}
}

// testChunkPatterns sends traffic of several shapes through a Forwarder at
// once, from small exchanges to bulk transfers, and checks that every byte
// arrives in order (see TestLoopChunkPatterns and TestGoroutinePath).
func testChunkPatterns(t *testing.T) *Forwarder {
	// The server echoes in chunks of its own size, sometimes pausing.
	be := serve(t, func(c net.Conn) {
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf[:1+r.IntN(len(buf))])
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				c.(*net.TCPConn).CloseWrite()
				return
			}
			if r.IntN(8) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	})
	fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n server s %s\n", be.addr()))
	front := addr(t, fw, "l")
	patterns := []struct {
		name     string
		chunks   []int         // sizes written in turn
		lateRead time.Duration // the client starts reading after this
		pingPong bool          // read each chunk's echo before the next
	}{
		{"ping-pong", []int{1, 100, 1000, 5000, 16383, 7}, 0, true},
		{"small stream", []int{100, 200, 300, 400, 500, 600, 700, 800}, 0, false},
		{"exactly the buffer", []int{smallCopy, smallCopy, 1}, 0, false},
		{"bulk", []int{4 << 20}, 0, false},
		{"small then bulk", []int{10, 20, 3 << 20, 5}, 0, false},
		{"bulk to a late reader", []int{1000, 6 << 20}, 300 * time.Millisecond, false},
		{"many small to a late reader", repeat(2000, 1500), 300 * time.Millisecond, false},
	}
	var wg sync.WaitGroup
	for _, p := range patterns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := runPattern(front, p.chunks, p.lateRead, p.pingPong); err != nil {
				t.Errorf("%s: %v", p.name, err)
			}
		}()
	}
	wg.Wait()
	return fw
}

func repeat(n, size int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = size
	}
	return out
}

// runPattern writes the chunks (random bytes) to a new connection through
// front, half-closes, and checks the echo is the same bytes.
func runPattern(front string, chunks []int, lateRead time.Duration, pingPong bool) error {
	c, err := net.Dial("tcp", front)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	sent := sha256.New()
	var payload []byte
	for _, n := range chunks {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rand.Uint32())
		}
		payload = append(payload, b...)
	}
	sent.Write(payload)
	if pingPong {
		off := 0
		got := sha256.New()
		for _, n := range chunks {
			if _, err := c.Write(payload[off : off+n]); err != nil {
				return err
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(c, buf); err != nil {
				return fmt.Errorf("echo of a %d-byte chunk: %w", n, err)
			}
			got.Write(buf)
			off += n
		}
		if !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
			return fmt.Errorf("echo differs")
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		off := 0
		for _, n := range chunks {
			if _, err := c.Write(payload[off : off+n]); err != nil {
				errc <- err
				return
			}
			off += n
		}
		errc <- c.(*net.TCPConn).CloseWrite()
	}()
	time.Sleep(lateRead)
	got := sha256.New()
	n, err := io.Copy(got, c)
	if err != nil {
		return fmt.Errorf("after %d bytes: %w", n, err)
	}
	if err := <-errc; err != nil {
		return err
	}
	if n != int64(len(payload)) || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		return fmt.Errorf("echo of %d bytes came back as %d different bytes", len(payload), n)
	}
	return nil
}
