package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/portfwd"
)

func TestMain(m *testing.M) { testutil.VerifyMain(m) }

// checkCases are configuration files that portfwd -c and haproxy -c must
// judge alike; httpOnly marks the one documented difference.
var checkCases = []struct {
	name, text string
	want       int
	httpOnly   bool
}{
	{"valid", "frontend f\n bind 127.0.0.1:7999\n default_backend b\nbackend b\n server s 127.0.0.1:7998\n", 0, false},
	{"valid with warnings", "global\n daemon\n log 127.0.0.1 local0\ndefaults\n option tcplog\n option dontlognull\n timeout connect 5s\nlisten l\n bind :7999\n server s 127.0.0.1:22\n", 0, false},
	{"all server options", "backend b\n balance leastconn\n retries 2\n timeout queue 3s\n server s 127.0.0.1:22 check inter 1s rise 3 fall 2 send-proxy-v2 maxconn 5 maxqueue 6 weight 10\n server t 127.0.0.1:23 backup send-proxy\nfrontend f\n bind *:7999 accept-proxy\n maxconn 50\n default_backend b\n", 0, false},
	{"time units", "defaults\n timeout connect 500\n timeout client 5000s\n timeout server 1h\n timeout tunnel 2d\n timeout queue 250ms\n timeout client-fin 1m\n timeout server-fin 30s\n timeout check 100us\nlisten l\n bind :7999\n server s 127.0.0.1:22\n", 0, false},
	{"frontend without backend", "frontend f\n bind :7999\n", 0, false},
	{"no listener", "backend b\n server s 127.0.0.1:22\n", 2, false},
	{"frontend without bind", "frontend f\n default_backend b\nbackend b\n server s 127.0.0.1:22\n", 2, false},
	{"empty", "# nothing\n", 2, false},
	{"unknown keyword", "frontend f\n bind :7999\n defualt_backend b\n", 1, false},
	{"unknown server option", "backend b\n server s 127.0.0.1:22 chek\nlisten l\n bind :1\n", 1, false},
	{"server without address", "backend b\n server s\n", 1, false},
	{"missing default_backend", "frontend f\n bind :7999\n default_backend nope\nbackend b\n server s 127.0.0.1:22\n", 1, false},
	{"bad time", "defaults\n timeout client 5x\nlisten l\n bind :1\n", 1, false},
	{"bad balance", "backend b\n balance rondrobin\n", 1, false},
	{"bad global keyword", "global\n maxcon 10\n", 1, false},
	{"keyword out of section", "bind :7999\n", 1, false},
	{"bad retries", "defaults\n retries\nlisten l\n bind :1\n", 1, false},
	{"duplicate frontend", "frontend f\n bind :1\nfrontend f\n bind :2\n", 1, false},
	{"bind without port", "frontend f\n bind 127.0.0.1\n", 1, false},
	{"bad bind address", "frontend f\n bind nowhere\n", 1, false},
	{"mode http", "defaults\n mode http\nlisten l\n bind :7999\n server s 127.0.0.1:80\n", 1, true},
	{"http checks", "defaults\n mode tcp\n option httpchk GET /status/ready\n http-check expect status 200\nlisten l\n bind :7999\n server s 127.0.0.1:7999 check port 7990 inter 2s fall 3 rise 2\n", 0, false},
	{"http check send and rstatus", "listen l\n bind :7999\n option httpchk\n http-check send meth HEAD uri /ready ver HTTP/1.1 hdr Host git\n http-check expect ! rstatus ^5\n server s 127.0.0.1:7999 check port 7990\n", 0, false},
	{"http-check without httpchk", "listen l\n bind :7999\n http-check expect status 200\n server s 127.0.0.1:7999 check\n", 0, false},
	{"bad expect status", "listen l\n bind :7999\n option httpchk\n http-check expect status abc\n server s 127.0.0.1:7999 check\n", 1, false},
	{"bad expect regex", "listen l\n bind :7999\n option httpchk\n http-check expect rstatus ^2(\n server s 127.0.0.1:7999 check\n", 1, false},
	{"httpchk extra argument", "listen l\n bind :7999\n option httpchk GET / HTTP/1.0 x\n server s 127.0.0.1:7999 check\n", 1, false},
	{"http-check rules over the defaults'", "defaults\n option httpchk GET /status/ready\n http-check expect status 200\nlisten l\n bind :7999\n http-check expect status 200-299\n server s 127.0.0.1:7999 check port 7990\n", 0, false},
	{"check-ssl verify none", "listen l\n bind :7999\n option httpchk GET /status/ready\n server s 127.0.0.1:7999 check port 8990 check-ssl verify none check-sni git.example.com\n", 0, false},
	{"check-ssl without ca-file", "listen l\n bind :7999\n option httpchk\n server s 127.0.0.1:7999 check port 8990 check-ssl\n", 1, false},
	{"check-ssl missing ca-file", "listen l\n bind :7999\n option httpchk\n server s 127.0.0.1:7999 check port 8990 check-ssl ca-file /nonexistent/ca.pem\n", 1, false},
	{"check port without number", "listen l\n bind :7999\n server s 127.0.0.1:7999 check port\n", 1, false},
}

// TestCheckAgreesWithHAProxy runs portfwd -c and haproxy -c on each file:
// exit codes must agree except for mode http, and every error portfwd
// prints names file:line.
func TestCheckAgreesWithHAProxy(t *testing.T) {
	haproxy := testutil.Require(t, "haproxy")
	dir := t.TempDir()
	errorLine := regexp.MustCompile(`^(.+):(\d+): error: `)
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".cfg")
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr strings.Builder
			got := run([]string{"-c", "-f", path}, &stdout, &stderr, nil, nil)

			hp := exec.Command(haproxy, "-c", "-f", path)
			out, err := hp.CombinedOutput()
			hpCode := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				hpCode = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}

			if got != tc.want {
				t.Errorf("portfwd -c exit %d, want %d\n%s", got, tc.want, stderr.String())
			}
			if tc.httpOnly {
				if hpCode != 0 {
					t.Errorf("haproxy -c exit %d on a mode http file, the documented difference expects 0", hpCode)
				}
			} else if hpCode != got {
				t.Errorf("haproxy -c exit %d, portfwd -c exit %d\nhaproxy:\n%s\nportfwd:\n%s", hpCode, got, out, stderr.String())
			}
			errors := 0
			for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if strings.Contains(line, ": error: ") {
					errors++
					if m := errorLine.FindStringSubmatch(line); m == nil || m[1] != path {
						t.Errorf("error without file:line: %q", line)
					}
				}
			}
			if (got == 1) != (errors > 0) {
				t.Errorf("exit %d with %d error lines:\n%s", got, errors, stderr.String())
			}
		})
	}
}

func TestSampleConfigChecks(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run([]string{"-c", "-f", "bitbucket-ssh.cfg"}, &stdout, &stderr, nil, nil); code != 0 {
		t.Fatalf("portfwd -c on the sample: exit %d\n%s", code, stderr.String())
	}
	haproxy := testutil.Require(t, "haproxy")
	if out, err := exec.Command(haproxy, "-c", "-f", "bitbucket-ssh.cfg").CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c on the sample: %v\n%s", err, out)
	}
}

// TestRunReloadStatsDrain runs the command: it forwards, reloads on SIGHUP
// without cutting an established connection, serves statistics, and on
// SIGTERM drains before exiting.
func TestRunReloadStatsDrain(t *testing.T) {
	oldBE := greeter(t, "old")
	newBE := greeter(t, "new")
	front := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	statsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	path := filepath.Join(t.TempDir(), "portfwd.cfg")
	write := func(backend string) {
		cfg := fmt.Sprintf("frontend fe\n bind %s\n default_backend be\nbackend be\n server s %s\n", front, backend)
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(oldBE)

	sigs := make(chan os.Signal, 1)
	ready := make(chan *portfwd.Forwarder, 1)
	exited := make(chan int, 1)
	go func() {
		exited <- run([]string{"-f", path, "-stats", statsAddr, "-q"}, io.Discard, io.Discard, sigs, ready)
	}()
	select {
	case <-ready:
	case code := <-exited:
		t.Fatalf("portfwd exited with %d", code)
	}

	held, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldR := bufio.NewReader(held)
	if line, _ := heldR.ReadString('\n'); line != "old\n" {
		t.Fatalf("before reload: %q", line)
	}

	write(newBE)
	sigs <- syscall.SIGHUP
	deadline := time.Now().Add(10 * time.Second)
	for greet(t, front) != "new" {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload the configuration")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The connection made before the reload still works.
	fmt.Fprintln(held, "ping")
	if line, err := heldR.ReadString('\n'); line != "ping\n" {
		t.Fatalf("established connection after reload: %q, %v", line, err)
	}

	// The greeting connections close asynchronously: wait until only the held one
	// is current.
	var st portfwd.Stats
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st = portfwd.Stats{}
		getJSON(t, "http://"+statsAddr+"/", &st)
		if len(st.Frontends) == 1 && st.Frontends[0].Current == 1 || time.Now().After(deadline) {
			break
		}
	}
	if len(st.Frontends) != 1 || st.Frontends[0].Name != "fe" || st.Frontends[0].Current != 1 ||
		len(st.Backends) != 1 || st.Backends[0].Servers[0].Addr != newBE {
		t.Fatalf("stats JSON: %+v", st)
	}
	metrics := get(t, "http://"+statsAddr+"/metrics")
	for _, want := range []string{
		`portfwd_frontend_current_connections{frontend="fe"} 1`,
		`portfwd_server_up{backend="be",server="s"} 1`,
		"# TYPE portfwd_backend_connections_total counter",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}

	sigs <- syscall.SIGTERM
	deadline = time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", front, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("SIGTERM did not stop accepting")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case code := <-exited:
		t.Fatalf("exited (%d) with a connection still open", code)
	default:
	}
	fmt.Fprintln(held, "still here")
	if line, err := heldR.ReadString('\n'); line != "still here\n" {
		t.Fatalf("connection during drain: %q, %v", line, err)
	}
	held.Close()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit code %d after drain", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("portfwd did not exit once its last connection ended")
	}
}

// greeter serves "name\n" to each connection, then echoes lines.
func greeter(t *testing.T, name string) string {
	ln := testutil.Listen(t)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			go func() {
				fmt.Fprintln(c, name)
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func greet(t *testing.T, addr string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func get(t *testing.T, url string) string {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

func getJSON(t *testing.T, url string, v any) {
	if err := json.Unmarshal([]byte(get(t, url)), v); err != nil {
		t.Fatal(err)
	}
}
