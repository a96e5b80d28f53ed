package sshserve

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestReadOfferFromGoClient reads the KEXINIT of x/crypto's client and checks the
// lists, then lets the handshake go on through the offerConn.
func TestReadOfferFromGoClient(t *testing.T) {
	cc, sc := tcpPair(t)
	ciphers := []string{ssh.CipherAES256CTR, ssh.CipherChaCha20Poly1305}
	done := make(chan error, 1)
	go func() {
		conn, chans, reqs, err := ssh.NewClientConn(cc, "x", &ssh.ClientConfig{
			User: "u", Config: ssh.Config{Ciphers: ciphers},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		})
		if err == nil {
			go ssh.DiscardRequests(reqs)
			go func() {
				for ch := range chans {
					ch.Reject(ssh.Prohibited, "")
				}
			}()
			conn.Close()
		}
		done <- err
	}()
	nc, offer := readOffer(sc, "SSH-2.0-gitfleet-test", time.Now().Add(10*time.Second))
	if offer == nil {
		t.Fatal("no offer read from the Go client")
	}
	if !slices.Equal(offer.cipherC2S, ciphers) || !slices.Equal(offer.cipherS2C, ciphers) || len(offer.kex) == 0 {
		t.Fatalf("offer = %+v", offer)
	}
	if offer.version != "SSH-2.0-Go" {
		t.Fatalf("client version %q", offer.version)
	}
	sc.SetReadDeadline(time.Time{})
	cfg := &ssh.ServerConfig{NoClientAuth: true, ServerVersion: "SSH-2.0-gitfleet-test"}
	cfg.AddHostKey(testHostKey(t))
	cfg.Ciphers = serverChoice([]string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305, ssh.CipherAES256CTR}, offer.cipherC2S, offer.cipherS2C)
	if !slices.Equal(cfg.Ciphers, []string{ssh.CipherChaCha20Poly1305}) {
		t.Fatalf("server choice %v, want chacha20 (the first of ours the client has)", cfg.Ciphers)
	}
	sconn, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		t.Fatalf("handshake through the offerConn: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		for range chans {
		}
	}()
	if got := sconn.Conn.(ssh.AlgorithmsConnMetadata).Algorithms().Read.Cipher; got != ssh.CipherChaCha20Poly1305 {
		t.Fatalf("negotiated %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("client: %v", err)
	}
	sconn.Close()
}

// TestReadOfferWithoutKexInit: a client that sends its version line and then
// waits gets the whole lists once the wait is over, and every byte it sent is
// replayed to the handshake.
func TestReadOfferWithoutKexInit(t *testing.T) {
	cc, sc := tcpPair(t)
	if _, err := cc.Write([]byte("SSH-2.0-waiter\r\n")); err != nil {
		t.Fatal(err)
	}
	nc, offer := readOffer(sc, "SSH-2.0-gitfleet-test", time.Now().Add(200*time.Millisecond))
	if offer != nil {
		t.Fatalf("offer %+v from a client that sent none", offer)
	}
	line := make([]byte, len("SSH-2.0-gitfleet-test\r\n"))
	if _, err := io.ReadFull(cc, line); err != nil || string(line) != "SSH-2.0-gitfleet-test\r\n" {
		t.Fatalf("server version line %q, %v", line, err)
	}
	got := make([]byte, 64)
	n, err := nc.Read(got)
	if err != nil || string(got[:n]) != "SSH-2.0-waiter\r\n" {
		t.Fatalf("replayed %q, %v", got[:n], err)
	}
	// The handshake's own version line is dropped, the rest passes.
	if n, err := nc.Write([]byte("SSH-2.0-gitfleet-test\r\nnext")); err != nil || n != len("SSH-2.0-gitfleet-test\r\nnext") {
		t.Fatalf("write %d, %v", n, err)
	}
	rest := make([]byte, 4)
	if _, err := io.ReadFull(cc, rest); err != nil || string(rest) != "next" {
		t.Fatalf("client read %q, %v", rest, err)
	}
	// A different version line from the handshake is an error, not a silent
	// mismatch.
	nc2 := &offerConn{Conn: sc, sent: []byte("SSH-2.0-a\r\n")}
	if _, err := nc2.Write([]byte("SSH-2.0-b\r\n")); err == nil {
		t.Fatal("a mismatched version write was accepted")
	}
}

// TestReadOfferGarbage: bytes that are not SSH are replayed unchanged, for the
// handshake to refuse.
func TestReadOfferGarbage(t *testing.T) {
	for name, input := range map[string][]byte{
		"http":         []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"huge packet":  append([]byte("SSH-2.0-x\r\n"), 0x7f, 0xff, 0xff, 0xff, 1, 2, 3),
		"not kexinit":  append([]byte("SSH-2.0-x\r\n"), 0, 0, 0, 12, 4, 21, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0),
		"long version": bytes.Repeat([]byte("x"), 2000),
	} {
		t.Run(name, func(t *testing.T) {
			cc, sc := tcpPair(t)
			go cc.Write(input)
			nc, offer := readOffer(sc, "SSH-2.0-gitfleet-test", time.Now().Add(300*time.Millisecond))
			if offer != nil {
				t.Fatalf("offer %+v from garbage", offer)
			}
			sc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			got, _ := io.ReadAll(io.LimitReader(nc, int64(len(input))))
			if !bytes.Equal(got, input) {
				t.Fatalf("replayed %q, want %q", got, input)
			}
		})
	}
}

// FuzzParseKexInit: any payload parses or is refused, without a panic, and what
// parses has every list it claims.
func FuzzParseKexInit(f *testing.F) {
	var p []byte
	p = append(p, msgKexInit)
	p = append(p, make([]byte, 16)...)
	for i := 0; i < 10; i++ {
		p = append(p, 0, 0, 0, 3, 'a', ',', 'b')
	}
	p = append(p, 0, 0, 0, 0, 0)
	f.Add(p)
	f.Add([]byte{msgKexInit})
	f.Fuzz(func(t *testing.T, payload []byte) {
		o, ok := parseKexInit(payload)
		if ok && (o == nil || payload[0] != msgKexInit) {
			t.Fatalf("parsed %+v from a non-KEXINIT", o)
		}
	})
}

// testHostKey returns a fresh Ed25519 host key.
func testHostKey(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
