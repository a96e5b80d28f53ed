package sshserve_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// seenAddrs records the client addresses the callbacks and the session hook see.
type seenAddrs struct {
	mu   sync.Mutex
	auth []string
	hook []string
}

func (s *seenAddrs) option() sshservetest.Option {
	return func(srv *sshserve.Server) {
		inner := srv.PublicKeyCallback
		srv.PublicKeyCallback = func(ctx context.Context, c sshserve.ConnInfo, k ssh.PublicKey) (sshserve.Principal, error) {
			s.mu.Lock()
			s.auth = append(s.auth, c.RemoteAddr.String())
			s.mu.Unlock()
			return inner(ctx, c, k)
		}
		srv.SessionHook = func(i sshserve.SessionInfo) {
			s.mu.Lock()
			s.hook = append(s.hook, i.Conn.RemoteAddr.String())
			s.mu.Unlock()
		}
	}
}

func (s *seenAddrs) lastAuth() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.auth) == 0 {
		return ""
	}
	return s.auth[len(s.auth)-1]
}

func withProxy(policy gitfleet.ProxyPolicy, trusted ...string) sshservetest.Option {
	return func(s *sshserve.Server) {
		s.ProxyProtocol = policy
		for _, p := range trusted {
			s.ProxyTrusted = append(s.ProxyTrusted, netip.MustParsePrefix(p))
		}
		s.ProxyHeaderTimeout = 500 * time.Millisecond
	}
}

// dialFrom opens a TCP connection to srv from the loopback address from.
func dialFrom(t *testing.T, srv *sshservetest.Server, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sshOver runs the SSH handshake as the default user over c and returns whoami's
// output.
func sshOver(srv *sshservetest.Server, c net.Conn) (string, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc, chans, reqs, err := ssh.NewClientConn(c, srv.Addr(), &ssh.ClientConfig{
		User:              "git",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(srv.User.Signer)},
		HostKeyCallback:   ssh.FixedHostKey(srv.HostKey),
		HostKeyAlgorithms: []string{srv.HostKey.Type()},
	})
	if err != nil {
		return "", err
	}
	client := ssh.NewClient(sc, chans, reqs)
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.Output("whoami")
	return string(out), err
}

func v1Header(src string) []byte {
	return []byte(fmt.Sprintf("PROXY TCP4 %s 127.0.0.1 40000 7999\r\n", src))
}

func v2Header(t *testing.T, src string) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(src), Port: 40001}, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 7999})
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProxyProtocol(t *testing.T) {
	var seen seenAddrs
	var logs logBuffer
	srv := sshservetest.NewServer(t, withProxy(gitfleet.ProxyRequired, "127.0.0.1/32"), seen.option(),
		sshservetest.WithLogger(logs.logger()))

	t.Run("banner waits for the header", func(t *testing.T) {
		c := dialFrom(t, srv, "127.0.0.1")
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		buf := make([]byte, 64)
		if n, err := c.Read(buf); n != 0 || err == nil {
			t.Fatalf("server sent %q before the PROXY header (err %v)", buf[:n], err)
		}
		c.SetReadDeadline(time.Time{})
		c.Write(v1Header("203.0.113.7"))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "SSH-2.0-gitfleet") {
			t.Fatalf("banner after header: %q %v", line, err)
		}
	})
	for _, tc := range []struct {
		name   string
		header func() []byte
		src    string
	}{
		{"v1", func() []byte { return v1Header("203.0.113.7") }, "203.0.113.7"},
		{"v2", func() []byte { return v2Header(t, "198.51.100.9") }, "198.51.100.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFrom(t, srv, "127.0.0.1")
			c.Write(tc.header())
			out, err := sshOver(srv, c)
			if err != nil || out != sshservetest.DefaultUser+"\n" {
				t.Fatalf("whoami through PROXY %s: %q %v", tc.name, out, err)
			}
			if got := seen.lastAuth(); !strings.HasPrefix(got, tc.src+":") {
				t.Fatalf("the key callback saw %s, want %s", got, tc.src)
			}
			mustContain(t, "log", logs.String(), "remote="+tc.src+":")
		})
	}
	refused := []struct {
		name, from string
		header     []byte
		reason     string
	}{
		{"no header", "127.0.0.1", nil, sshserve.RejectProxyHeader},
		{"garbage header", "127.0.0.1", []byte("PROXY NONSENSE\r\n"), sshserve.RejectProxyHeader},
		{"binary garbage", "127.0.0.1", []byte("\r\n\r\n\x00\r\nQUIT\n\x99\x99\x00\x10garbagegarbage!!"), sshserve.RejectProxyHeader},
		{"overlong v1", "127.0.0.1", []byte("PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n"), sshserve.RejectProxyHeader},
		{"ssh banner instead", "127.0.0.1", []byte("SSH-2.0-OpenSSH_9.2\r\n"), sshserve.RejectProxyHeader},
		{"untrusted peer with a header", "127.0.0.2", v1Header("203.0.113.8"), sshserve.RejectProxyUntrusted},
		{"untrusted peer without a header", "127.0.0.2", nil, sshserve.RejectProxyUntrusted},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Stats().Rejected[tc.reason]
			c := dialFrom(t, srv, tc.from)
			if tc.header != nil {
				c.Write(tc.header)
			}
			if _, err := sshOver(srv, c); err == nil {
				t.Fatal("connection accepted")
			}
			if after := srv.Stats().Rejected[tc.reason]; after != before+1 {
				t.Fatalf("rejections for %s: %d -> %d", tc.reason, before, after)
			}
		})
	}
}

func TestProxyProtocolOptional(t *testing.T) {
	var seen seenAddrs
	srv := sshservetest.NewServer(t, withProxy(gitfleet.ProxyOptional, "127.0.0.1/32"), seen.option())
	// A trusted peer may send a header...
	c := dialFrom(t, srv, "127.0.0.1")
	c.Write(v2Header(t, "192.0.2.44"))
	if out, err := sshOver(srv, c); err != nil || !strings.HasPrefix(seen.lastAuth(), "192.0.2.44:") {
		t.Fatalf("trusted header: %q %v, saw %s", out, err, seen.lastAuth())
	}
	// ...or not.
	if _, err := sshOver(srv, dialFrom(t, srv, "127.0.0.1")); err != nil || !strings.HasPrefix(seen.lastAuth(), "127.0.0.1:") {
		t.Fatalf("trusted peer without header: %v, saw %s", err, seen.lastAuth())
	}
	// Any peer may connect without one...
	if _, err := sshOver(srv, dialFrom(t, srv, "127.0.0.2")); err != nil || !strings.HasPrefix(seen.lastAuth(), "127.0.0.2:") {
		t.Fatalf("untrusted peer without header: %v, saw %s", err, seen.lastAuth())
	}
	// ...but an untrusted peer cannot choose its address.
	c = dialFrom(t, srv, "127.0.0.2")
	c.Write(v1Header("203.0.113.66"))
	if _, err := sshOver(srv, c); err == nil {
		t.Fatal("an untrusted peer's PROXY header was accepted")
	}
}

// TestHAProxySendProxyV2 puts a real HAProxy with send-proxy-v2 in front of the
// server. The OpenSSH client connects from 127.0.0.3; the server sees HAProxy on
// 127.0.0.1 but logs, authorizes and checks from= against 127.0.0.3.
func TestHAProxySendProxyV2(t *testing.T) {
	haproxy := testutil.Require(t, "haproxy")
	var seen seenAddrs
	var logs logBuffer
	userKey := testutil.GenerateKey(t, testutil.Ed25519)
	otherKey := testutil.GenerateKey(t, testutil.Ed25519)
	keys, err := sshserve.ParseAuthorizedKeys("test", []byte(
		`from="127.0.0.3" `+keyLine(userKey)+" carol\n"+
			`from="127.0.0.1" `+keyLine(otherKey)+" mallory\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv := sshservetest.NewServer(t, withProxy(gitfleet.ProxyRequired, "127.0.0.1/32"), sshservetest.WithLogger(logs.logger()),
		func(s *sshserve.Server) {
			s.PublicKeyCallback = sshserve.AuthorizedKeysCallback(keys, func(k sshserve.AuthorizedKey) sshserve.Principal {
				return sshserve.Principal{Name: k.Comment}
			})
			s.Authorizer = func(_ context.Context, c sshserve.ConnInfo, p sshserve.Principal, _, _ string, _ sshserve.Access) error {
				if p.Name == "carol" && strings.HasPrefix(c.RemoteAddr.String(), "127.0.0.3:") {
					return nil
				}
				return sshserve.ErrDenied
			}
		}, seen.option())
	srv.SeedRepo("PROJ", "repo")

	port := testutil.FreePort(t)
	cfg := fmt.Sprintf(`global
	maxconn 100
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend ssh
	bind 127.0.0.1:%d
	default_backend gitfleet
backend gitfleet
	server s1 %s send-proxy-v2
`, port, srv.Addr())
	cfgPath := filepath.Join(t.TempDir(), "haproxy.cfg")
	writeFile(t, cfgPath, cfg)
	cmd := exec.Command(haproxy, "-db", "-f", cfgPath)
	var hout logBuffer
	cmd.Stdout, cmd.Stderr = &hout, &hout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", port), exited, &hout)

	kh := testutil.WriteKnownHosts(t, "127.0.0.1", port, srv.HostKey)
	g := testutil.NewGit(t)
	g.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(userKey.Path, kh)+" -b 127.0.0.3")
	g.SetEnv("GIT_SSH_VARIANT", "ssh")
	url := gitfleet.CloneURL(gitfleet.SSHBaseURL("127.0.0.1", port), gitfleet.RepoName{Project: "PROJ", Slug: "repo"})
	dst := tempDir(t, "clone")
	g.Run("", "clone", "-q", url, dst)
	g.Fsck(dst)
	if got := seen.lastAuth(); !strings.HasPrefix(got, "127.0.0.3:") {
		t.Fatalf("the key callback saw %s, want the client's 127.0.0.3", got)
	}
	mustContain(t, "log", logs.String(), "remote=127.0.0.3:")

	// A key whose from= names HAProxy's own address does not get in through it.
	g2 := testutil.NewGit(t)
	g2.SetEnv("GIT_SSH_COMMAND", testutil.SSHCommand(otherKey.Path, kh)+" -b 127.0.0.3")
	if _, err := g2.TryRun("", "ls-remote", url); err == nil {
		t.Fatal("from=\"127.0.0.1\" matched a client behind the proxy")
	}
}

// keyLine is the authorized_keys form of k without a comment.
func keyLine(k *testutil.Key) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Public)))
}

// waitListening waits until addr accepts connections, or fails when the process
// behind it exits.
func waitListening(t *testing.T, addr string, exited <-chan struct{}, out *logBuffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("process exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening: %v\n%s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
