package portfwd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// originServer reads the PROXY header a server receives with go-proxyproto
// and answers with the source address it names, then echoes.
func originServer(t testing.TB) *backendServer {
	return serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		h, err := proxyproto.Read(r)
		if err != nil {
			fmt.Fprintf(c, "no header: %v\n", err)
			return
		}
		fmt.Fprintf(c, "v%d %s\n", h.Version, h.SourceAddr)
		c.SetDeadline(time.Time{})
		io.Copy(c, r)
	})
}

// TestProxyChain chains two forwarders: the first sends a PROXY header, the
// second accepts it and sends its own to the server, which must see the
// original client address.
func TestProxyChain(t *testing.T) {
	for _, first := range []string{"send-proxy", "send-proxy-v2"} {
		for _, second := range []string{"send-proxy", "send-proxy-v2"} {
			t.Run(first+" then "+second, func(t *testing.T) {
				origin := originServer(t)
				inner := start(t, fmt.Sprintf("listen inner\n bind 127.0.0.1:0 accept-proxy\n server o %s %s\n", origin.addr(), second))
				outer := start(t, fmt.Sprintf("listen outer\n bind 127.0.0.1:0\n server i %s %s\n", addr(t, inner, "inner"), first))
				c, err := net.Dial("tcp", addr(t, outer, "outer"))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				line, err := r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				wantV := map[string]int{"send-proxy": 1, "send-proxy-v2": 2}[second]
				if want := fmt.Sprintf("v%d %s\n", wantV, c.LocalAddr()); line != want {
					t.Fatalf("server saw %q, want %q", line, want)
				}
				// Data follows the headers intact.
				io.WriteString(c, "payload\n")
				if got, _ := r.ReadString('\n'); got != "payload\n" {
					t.Fatalf("echo after the header: %q", got)
				}
			})
		}
	}
}

// TestReadProxyHeader sends headers in pieces, followed at once by payload,
// and checks that exactly the header is consumed.
func TestReadProxyHeader(t *testing.T) {
	src := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}
	dst := &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 7999}
	v1 := []byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 7999\r\n")
	var v2buf bytes.Buffer
	proxyproto.HeaderProxyFromAddrs(2, src, dst).WriteTo(&v2buf)
	v2 := v2buf.Bytes()
	tlvHeader := proxyproto.HeaderProxyFromAddrs(2, src, dst)
	tlvHeader.SetTLVs([]proxyproto.TLV{{Type: proxyproto.PP2_TYPE_AUTHORITY, Value: []byte("git.example.com")}})
	var v2tlv bytes.Buffer
	tlvHeader.WriteTo(&v2tlv)
	var local bytes.Buffer
	writeProxyHeader(&local, ProxyV2, nil, nil)

	tests := []struct {
		name    string
		pieces  [][]byte
		wantSrc string // "" for LOCAL
		wantErr bool
	}{
		{"v1 whole", [][]byte{v1}, "192.0.2.7:40000", false},
		{"v1 split", [][]byte{v1[:3], v1[3:20], v1[20:]}, "192.0.2.7:40000", false},
		{"v1 byte by byte", splitEvery(v1, 1), "192.0.2.7:40000", false},
		{"v2 whole", [][]byte{v2}, "192.0.2.7:40000", false},
		{"v2 split in the signature", [][]byte{v2[:5], v2[5:]}, "192.0.2.7:40000", false},
		{"v2 split in the addresses", [][]byte{v2[:17], v2[17:]}, "192.0.2.7:40000", false},
		{"v2 with TLVs", [][]byte{v2tlv.Bytes()}, "192.0.2.7:40000", false},
		{"v2 LOCAL", [][]byte{local.Bytes()}, "", false},
		{"v1 unknown", [][]byte{[]byte("PROXY UNKNOWN\r\n")}, "", false},
		{"not a header", [][]byte{[]byte("SSH-2.0-OpenSSH_9.2\r\n")}, "", true},
		{"v1 without end", [][]byte{append([]byte("PROXY TCP4 "), bytes.Repeat([]byte("1"), 120)...)}, "", true},
		{"v1 garbage", [][]byte{[]byte("PROXY TCP4 x y z w\r\n")}, "", true},
		{"bad v2 signature", [][]byte{append([]byte("\r\n\r\n\x00\r\nQUIX\n"), v2[12:]...)}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			server, err := ln.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			client.(*net.TCPConn).SetNoDelay(true)
			go func() {
				for i, p := range tt.pieces {
					if i == len(tt.pieces)-1 {
						p = append(append([]byte{}, p...), "after"...)
					}
					client.Write(p)
					time.Sleep(2 * time.Millisecond)
				}
			}()
			h, n, err := readProxyHeader(server, 5*time.Second)
			if tt.wantErr {
				if !errors.Is(err, ErrProxyHeader) {
					t.Fatalf("got header %v, err %v; want ErrProxyHeader", h, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, p := range tt.pieces {
				total += len(p)
			}
			if n != total {
				t.Fatalf("consumed %d bytes, header is %d", n, total)
			}
			gotSrc := ""
			if h.Command.IsProxy() && h.SourceAddr != nil {
				gotSrc = h.SourceAddr.String()
			}
			if gotSrc != tt.wantSrc {
				t.Fatalf("source %q, want %q", gotSrc, tt.wantSrc)
			}
			rest := make([]byte, 5)
			server.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(server, rest); err != nil || string(rest) != "after" {
				t.Fatalf("bytes after the header: %q, %v", rest, err)
			}
		})
	}
}

func splitEvery(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func TestProxyHeaderTimeout(t *testing.T) {
	be := serve(t, echo)
	fw, err := New(parse(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0 accept-proxy\n server s %s\n", be.addr())), nil)
	if err != nil {
		t.Fatal(err)
	}
	fw.ProxyHeaderTimeout = 100 * time.Millisecond
	serveInBackground(t, fw)
	c, err := net.Dial("tcp", addr(t, fw, "l"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PROXY TCP4 ") // and nothing more
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("read %d, %v; want the connection closed after the header timeout", n, err)
	}
	if be.accepted() != 0 {
		t.Fatal("a connection without a complete header reached the server")
	}
}
