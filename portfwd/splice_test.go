//go:build linux

package portfwd

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/pires/go-proxyproto"
)

// TestDataPathUsesSplice runs a Forwarder process under strace while 8 MiB
// pass each way, and checks from the system calls that the bulk of the payload
// moved through splice(2) and not through read/write in user space (only the
// first smallCopy bytes each way do), also when the connection starts with
// PROXY headers in and out.
func TestDataPathUsesSplice(t *testing.T) {
	strace := testutil.Require(t, "strace")
	tests := []struct {
		name  string
		proxy bool // accept-proxy on the bind, send-proxy-v2 to the server
	}{
		{"plain", false},
		{"PROXY headers", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := serve(t, echo)
			bindOpt, serverOpt := "", ""
			if tt.proxy {
				be = serve(t, func(c net.Conn) {
					r := bufio.NewReader(c)
					if _, err := proxyproto.Read(r); err != nil {
						return
					}
					io.Copy(c, r)
				})
				bindOpt, serverOpt = "accept-proxy", "send-proxy-v2"
			}
			front := closedPort(t)
			out := filepath.Join(t.TempDir(), "strace.out")
			p := startHelper(t, fmt.Sprintf(`
listen l
    bind %s %s
    timeout client 30s
    timeout server 30s
    server s %s %s
`, front, bindOpt, be.addr(), serverOpt), front,
				strace, "-f", "-qq", "-o", out,
				"-e", "trace=splice,read,write,readv,writev,recvfrom,sendto,recvmsg,sendmsg")

			const size = 8 << 20
			payload := make([]byte, size)
			rand.Read(payload)
			c, err := net.Dial("tcp", front)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(60 * time.Second))
			if tt.proxy {
				src := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
				proxyproto.HeaderProxyFromAddrs(2, src, c.RemoteAddr()).WriteTo(c)
			}
			go func() {
				c.Write(payload)
				c.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			c.Close()
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("echo through the forwarder: %d bytes, %v", len(got), err)
			}
			p.stop()

			trace, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			bytesBy := syscallBytes(string(trace))
			spliced := bytesBy["splice"]
			var copied int64
			for name, n := range bytesBy {
				if name != "splice" {
					copied += n
				}
			}
			t.Logf("bytes moved by system call: %v", bytesBy)
			// Each direction splices socket->pipe and pipe->socket: 4 x size
			// counted in splice's results, less what was read and written in
			// user space (also counted twice: read, then write) before a full
			// read of smallCopy bytes showed a bulk transfer; how many short
			// reads come first depends on the machine's load.
			if want := int64(4*size) - copied; spliced < want {
				t.Fatalf("splice moved %d bytes, want at least %d", spliced, want)
			}
			if copied > size/16 {
				t.Fatalf("read/write-family calls moved %d bytes: the payload went through user space", copied)
			}
		})
	}
}

var syscallLine = regexp.MustCompile(`^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\().*\)\s+= (\d+)`)

// syscallBytes sums the positive results of each system call in strace
// output.
func syscallBytes(trace string) map[string]int64 {
	sums := map[string]int64{}
	for _, line := range strings.Split(trace, "\n") {
		m := syscallLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1] + m[2]
		n, _ := strconv.ParseInt(m[3], 10, 64)
		sums[name] += n
	}
	return sums
}
