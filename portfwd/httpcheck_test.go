package portfwd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestParseHTTPCheck reads the forms of "option httpchk", "http-check send",
// "http-check expect" and the server option "port", and their inheritance
// from defaults.
func TestParseHTTPCheck(t *testing.T) {
	tests := []struct {
		name, text string
		want       string // the backend's HTTPCheck request line and rule, or "tcp"
		port       int    // the server's CheckPort
		warning    string // a substring of the warnings
	}{
		{"tcp", "backend b\n server s 127.0.0.1:22 check\n", "tcp", 0, ""},
		{"defaults only", "backend b\n option httpchk\n server s 127.0.0.1:22 check port 8080\n", "OPTIONS / HTTP/1.0 <nil>", 8080, ""},
		{"uri", "backend b\n option httpchk /health\n server s 127.0.0.1:22 check\n", "OPTIONS /health HTTP/1.0 <nil>", 0, ""},
		{"method and uri", "backend b\n option httpchk GET /status/ready\n http-check expect status 200\n server s 127.0.0.1:22 check\n",
			"GET /status/ready HTTP/1.0 &{false [{200 200}] <nil>}", 0, ""},
		{"version", "backend b\n option httpchk HEAD / HTTP/1.1\n http-check send hdr Host git.example.com\n server s 127.0.0.1:22 check\n",
			"HEAD / HTTP/1.1 <nil> [{Host git.example.com}]", 0, ""},
		{"send", "backend b\n option httpchk\n http-check send meth GET uri /x ver HTTP/1.1 hdr Host h\n server s 127.0.0.1:22 check\n",
			"GET /x HTTP/1.1 <nil> [{Host h}]", 0, ""},
		{"expect before option", "backend b\n http-check expect ! status 500-599,404\n option httpchk GET /\n",
			"GET / HTTP/1.0 &{true [{500 599} {404 404}] <nil>}", 0, ""},
		{"rstatus", "backend b\n option httpchk\n http-check expect rstatus ^2\n", "OPTIONS / HTTP/1.0 rstatus ^2", 0, ""},
		{"from defaults", "defaults\n option httpchk GET /ready\n http-check expect status 200\nbackend b\n server s 127.0.0.1:22 check\nlisten l\n bind :1\n no option httpchk\n",
			"GET /ready HTTP/1.0 &{false [{200 200}] <nil>}", 0, ""},
		{"own rules replace the defaults'", "defaults\n option httpchk GET /ready\n http-check expect status 200\n http-check send hdr Host a\nbackend b\n http-check expect status 201\n",
			"GET /ready HTTP/1.0 &{false [{201 201}] <nil>}", 0, ""},
		{"rules without option", "backend b\n http-check expect status 200\n server s 127.0.0.1:22 check\n", "tcp", 0,
			"test.cfg:2: backend 'b' uses http-check rules without 'option httpchk', so the rules are ignored"},
		{"frontend", "frontend f\n bind :1\n option httpchk\nbackend b\n", "tcp", 0, "'option httpchk' ignored: frontend 'f' has no backend capability"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.text)
			b := cfg.Backends[0]
			got := "tcp"
			if h := b.HTTPCheck; h != nil {
				got = fmt.Sprintf("%s %s %s %v", h.method(), h.uri(), h.version(), h.Expect)
				if h.Expect != nil && h.Expect.Regexp != nil {
					got = fmt.Sprintf("%s %s %s rstatus %s", h.method(), h.uri(), h.version(), h.Expect.Regexp)
				}
				if len(h.Headers) > 0 {
					got = fmt.Sprintf("%s %s %s %v %v", h.method(), h.uri(), h.version(), h.Expect, h.Headers)
				}
			}
			if got != tt.want {
				t.Errorf("HTTPCheck %s, want %s", got, tt.want)
			}
			if len(b.Servers) > 0 && b.Servers[0].CheckPort != tt.port {
				t.Errorf("CheckPort %d, want %d", b.Servers[0].CheckPort, tt.port)
			}
			var warnings []string
			for _, w := range cfg.Warnings {
				warnings = append(warnings, w.String())
			}
			if tt.warning != "" && !strings.Contains(strings.Join(warnings, "\n"), tt.warning) {
				t.Errorf("warnings %q lack %q", warnings, tt.warning)
			}
			if len(cfg.Backends) > 1 && cfg.Backends[1].HTTPCheck != nil {
				t.Errorf("'no option httpchk' left %+v", cfg.Backends[1].HTTPCheck)
			}
		})
	}
}

// TestParseHTTPCheckErrors: what portfwd refuses, each with file:line.
func TestParseHTTPCheckErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"too many arguments", "backend b\n option httpchk GET / HTTP/1.0 x\n", "test.cfg:2: 'option httpchk' cannot handle unexpected argument 'x'"},
		{"bad version", "backend b\n option httpchk GET / HTPP/1.1\n", "test.cfg:2: 'option httpchk': invalid HTTP check version"},
		{"bad status", "backend b\n option httpchk\n http-check expect status abc\n", "test.cfg:3: 'http-check expect status': invalid status code or range 'abc'"},
		{"bad range", "backend b\n option httpchk\n http-check expect status 500-200\n", "test.cfg:3: 'http-check expect status': invalid status code or range '500-200'"},
		{"bad regex", "backend b\n option httpchk\n http-check expect rstatus ^2(\n", "test.cfg:3: 'http-check expect rstatus': regex '^2(' is invalid"},
		{"no pattern", "backend b\n option httpchk\n http-check expect status\n", "test.cfg:3: 'http-check expect' expects a match"},
		{"string", "backend b\n option httpchk\n http-check expect string ok\n", "test.cfg:3: 'http-check expect string' is not supported by portfwd"},
		{"near miss", "backend b\n option httpchk\n http-check expect statsu 200\n", "did you mean 'status' maybe ?"},
		{"two expects", "backend b\n option httpchk\n http-check expect status 200\n http-check expect status 201\n", "test.cfg:4: 'http-check expect': portfwd supports one expect rule"},
		{"send body", "backend b\n option httpchk\n http-check send body x\n", "test.cfg:3: 'http-check send body' is not supported"},
		{"send hdr", "backend b\n option httpchk\n http-check send hdr Host\n", "test.cfg:3: 'http-check send hdr' expects 2 argument(s)"},
		{"connect", "backend b\n http-check connect port 80\n", "test.cfg:2: 'http-check connect' is not supported"},
		{"unknown", "backend b\n http-check sned\n", "test.cfg:2: unknown keyword 'sned' in 'http-check'; did you mean 'send'"},
		{"port", "backend b\n server s 127.0.0.1:22 check port 70000\n", "test.cfg:2: 'server b/s': 'port' expects a port number (1-65535)"},
		{"port missing", "backend b\n server s 127.0.0.1:22 check port\n", "test.cfg:2: 'server b/s': 'port' expects an argument"},
		{"option near miss", "backend b\n option httpchck\n", "did you mean 'httpchk' maybe ?"},
		{"check-ssl without ca-file", "backend b\n server s 127.0.0.1:22 check check-ssl port 8443\n", "test.cfg:2: 'server b/s': verify is enabled by default but no CA file specified"},
		{"missing ca-file", "backend b\n server s 127.0.0.1:22 check check-ssl ca-file /nonexistent/ca.pem\n", "test.cfg:2: 'server b/s': couldn't open the ca-file '/nonexistent/ca.pem'"},
		{"bad verify", "backend b\n server s 127.0.0.1:22 check check-ssl verify maybe\n", "test.cfg:2: 'server b/s': 'verify' expects 'none' or 'required'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tt.text), "test.cfg")
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a *ConfigError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n%s\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

// TestHTTPExpectMatch: the default (2xx and 3xx) and the rules.
func TestHTTPExpectMatch(t *testing.T) {
	re := (&parser{cfg: &Config{}}).httpExpect([]string{"rstatus", "^(200|204)$"})
	tests := []struct {
		e    *HTTPExpect
		code int
		want bool
	}{
		{&HTTPExpect{Status: []StatusRange{{200, 200}}}, 200, true},
		{&HTTPExpect{Status: []StatusRange{{200, 200}}}, 204, false},
		{&HTTPExpect{Status: []StatusRange{{200, 299}, {301, 301}}}, 301, true},
		{&HTTPExpect{Negate: true, Status: []StatusRange{{500, 599}}}, 503, false},
		{&HTTPExpect{Negate: true, Status: []StatusRange{{500, 599}}}, 404, true},
		{re, 204, true},
		{re, 2040, false},
		{re, 503, false},
	}
	for _, tt := range tests {
		if got := tt.e.Match(tt.code); got != tt.want {
			t.Errorf("%+v.Match(%d) = %v", tt.e, tt.code, got)
		}
	}
	for line, want := range map[string]int{"HTTP/1.1 200 OK\r\n": 200, "HTTP/1.0 503\r\n": 503, "HTTP/1.1 2000 x\r\n": 0, "SSH-2.0-x\r\n": 0, "HTTP/1.1 abc\r\n": 0} {
		if code, _, _ := parseStatusLine(line); code != want {
			t.Errorf("parseStatusLine(%q) = %d, want %d", line, code, want)
		}
	}
}

// healthNode is a TCP server that says its name (the traffic port) with an
// HTTP health endpoint on another port whose status the test sets.
type healthNode struct {
	name    string
	traffic *backendServer
	health  *httptest.Server
	status  atomic.Int32
	mu      sync.Mutex
	lines   []string // request lines the health endpoint saw
}

func newHealthNode(t testing.TB, name string) *healthNode {
	n := &healthNode{name: name}
	n.status.Store(200)
	n.traffic = serve(t, named(name))
	n.health = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		n.lines = append(n.lines, r.Method+" "+r.RequestURI+" "+r.Proto+" "+r.Header.Get("Connection"))
		n.mu.Unlock()
		w.WriteHeader(int(n.status.Load()))
	}))
	t.Cleanup(n.health.Close)
	return n
}

func (n *healthNode) healthPort() string {
	_, port, _ := net.SplitHostPort(n.health.Listener.Addr().String())
	return port
}

func (n *healthNode) requests() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.lines...)
}

// httpCheckConfig is the configuration both portfwd and HAProxy run in
// TestHTTPHealthChecks: two servers checked over HTTP on their health port.
func httpCheckConfig(front string, a, b *healthNode) string {
	return fmt.Sprintf(`defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 2s
listen ssh
    bind %s
    balance roundrobin
    option httpchk GET /status/ready
    http-check expect status 200
    server a %s check port %s inter 100ms fall 2 rise 2
    server b %s check port %s inter 100ms fall 2 rise 2
`, front, a.traffic.addr(), a.healthPort(), b.traffic.addr(), b.healthPort())
}

// flipHealth drives the scenario through the proxy at front: both servers
// take traffic; a's health answers 503 and a stops getting new connections;
// it answers 200 again and a gets traffic again.
func flipHealth(t *testing.T, front string, a, b *healthNode) {
	t.Helper()
	seen := func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			name, err := ask(front)
			if err != nil {
				name = "error: " + err.Error()
			}
			got[name]++
		}
		return got
	}
	eventually(t, "both servers to take traffic", func() bool { s := seen(10); return s["a"] > 0 && s["b"] > 0 })

	a.status.Store(503)
	eventually(t, "server a to get no new connections", func() bool { return seen(8)["b"] == 8 })
	before := a.traffic.accepted()
	if s := seen(20); s["b"] != 20 {
		t.Fatalf("with a's health at 503: %v, want every connection on b", s)
	}
	if n := a.traffic.accepted(); n != before {
		t.Fatalf("server a accepted %d new connections while its health check failed", n-before)
	}

	a.status.Store(200)
	eventually(t, "server a to take traffic again", func() bool { return seen(8)["a"] > 0 })
}

// TestHTTPHealthChecks runs portfwd in front of two TCP servers whose
// health is an HTTP endpoint on another port (check port N): a server whose
// endpoint answers 503 is taken down after fall checks and gets no new
// connections, and comes back after rise passing checks. The checks carry
// the configured request; HAProxy runs the very same configuration through
// the same scenario.
func TestHTTPHealthChecks(t *testing.T) {
	a, b := newHealthNode(t, "a"), newHealthNode(t, "b")
	front := closedPort(t)
	text := httpCheckConfig(front, a, b)
	fw := start(t, text)
	flipHealth(t, front, a, b)
	st := serverStats(fw, "ssh", "a")
	if !st.Up || st.CheckFailures < 2 {
		t.Fatalf("server a after the flip: %+v, want up with >= 2 failed checks", st)
	}
	if reqs := a.requests(); len(reqs) == 0 || reqs[0] != "GET /status/ready HTTP/1.0 " {
		t.Fatalf("health requests %q, want GET /status/ready HTTP/1.0 as HAProxy sends it", reqs)
	}

	t.Run("haproxy", func(t *testing.T) {
		testutil.Require(t, "haproxy")
		a, b := newHealthNode(t, "a"), newHealthNode(t, "b")
		front := closedPort(t)
		startHAProxy(t, httpCheckConfig(front, a, b), front)
		flipHealth(t, front, a, b)
		if reqs := a.requests(); len(reqs) == 0 || reqs[0] != "GET /status/ready HTTP/1.0 " {
			t.Fatalf("HAProxy's health requests %q", reqs)
		}
	})
}

// TestHTTPCheckDefaults: "option httpchk" alone sends HAProxy's default
// request, OPTIONS / HTTP/1.0, and any 2xx or 3xx passes while a 4xx fails.
func TestHTTPCheckDefaults(t *testing.T) {
	a := newHealthNode(t, "a")
	a.status.Store(302)
	fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n option httpchk\n server a %s check port %s inter 50ms fall 1 rise 1\n",
		a.traffic.addr(), a.healthPort()))
	eventually(t, "a check", func() bool { return len(a.requests()) > 0 })
	if got := a.requests()[0]; got != "OPTIONS / HTTP/1.0 " {
		t.Fatalf("default request %q", got)
	}
	if st := serverStats(fw, "l", "a"); !st.Up {
		t.Fatalf("a 302 took the server down: %+v", st)
	}
	a.status.Store(404)
	eventually(t, "a 404 to take the server down", func() bool { return !serverStats(fw, "l", "a").Up })
	a.status.Store(204)
	eventually(t, "a 204 to bring it back", func() bool { return serverStats(fw, "l", "a").Up })
}

// TestHTTPCheckNotHTTP: a check port that does not speak HTTP fails the
// check (an SSH banner is no status line).
func TestHTTPCheckNotHTTP(t *testing.T) {
	be := serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("SSH-2.0-test\r\n"))
		buf := make([]byte, 1)
		c.Read(buf)
	})
	fw := start(t, fmt.Sprintf("backend b\n option httpchk\n server s %s check inter 50ms fall 1\n", be.addr()))
	eventually(t, "the server to go down", func() bool { return !serverStats(fw, "b", "s").Up })
}

// TestHTTPCheckHTTP11: an HTTP/1.1 check carries the configured headers (Go's
// server refuses an HTTP/1.1 request without Host) and Connection: close.
func TestHTTPCheckHTTP11(t *testing.T) {
	a := newHealthNode(t, "a")
	fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n option httpchk GET /ready?x=1 HTTP/1.1\n http-check send hdr Host git.example.com\n http-check expect rstatus ^2\n server a %s check port %s inter 50ms fall 1 rise 1\n",
		a.traffic.addr(), a.healthPort()))
	eventually(t, "a check", func() bool { return len(a.requests()) > 0 })
	if got := a.requests()[0]; got != "GET /ready?x=1 HTTP/1.1 close" {
		t.Fatalf("request %q", got)
	}
	a.status.Store(500)
	eventually(t, "a 500 to take the server down", func() bool { return !serverStats(fw, "l", "a").Up })
}

// TestHTTPCheckSSL checks an HTTPS health endpoint (check-ssl): trusted
// through ca-file, with and without check-sni, or with verify none; a wrong
// name, a certificate from another authority, or plain HTTP to the TLS port
// fail the check.
func TestHTTPCheckSSL(t *testing.T) {
	traffic := serve(t, named("a"))
	var status, served atomic.Int32
	status.Store(200)
	hs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(hs.Close)
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(dir, "other.pem")
	if err := os.WriteFile(otherCA, selfSigned(t), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, opts string
		up         bool
	}{
		{"ca-file", "check-ssl ca-file " + ca, true},
		{"ca-file and check-sni", "check-ssl verify required ca-file " + ca + " check-sni example.com", true},
		{"verify none", "check-ssl verify none", true},
		{"wrong check-sni", "check-ssl ca-file " + ca + " check-sni git.invalid", false},
		{"other authority", "check-ssl ca-file " + otherCA, false},
		{"plain HTTP to TLS", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := served.Load()
			fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n option httpchk GET /\n server a %s check port %s %s inter 50ms fall 1 rise 1\n",
				traffic.addr(), port, tt.opts))
			if tt.up {
				eventually(t, "two checks to reach the endpoint", func() bool { return served.Load() >= before+2 })
				if st := serverStats(fw, "l", "a"); !st.Up || st.CheckFailures != 0 {
					t.Fatalf("server after passing TLS checks: %+v", st)
				}
				return
			}
			eventually(t, "the server to go down", func() bool { return !serverStats(fw, "l", "a").Up })
			if n := served.Load(); n != before {
				t.Fatalf("%d check requests reached the endpoint over an untrusted connection", n-before)
			}
		})
	}
	t.Run("503 over TLS", func(t *testing.T) {
		fw := start(t, fmt.Sprintf("listen l\n bind 127.0.0.1:0\n option httpchk GET /\n server a %s check port %s check-ssl verify none inter 50ms fall 1 rise 1\n",
			traffic.addr(), port))
		status.Store(503)
		defer status.Store(200)
		eventually(t, "the server to go down", func() bool { return !serverStats(fw, "l", "a").Up })
	})
}

// selfSigned returns a PEM self-signed certificate, an authority that signed
// nothing the tests serve.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
