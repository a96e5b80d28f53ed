package portfwd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"500", 500 * time.Millisecond, false},
		{"0", 0, false},
		{"250us", 250 * time.Microsecond, false},
		{"20ms", 20 * time.Millisecond, false},
		{"500s", 500 * time.Second, false},
		{"5m", 5 * time.Minute, false},
		{"1h", time.Hour, false},
		{"2d", 48 * time.Hour, false},
		{"5000s", 5000 * time.Second, false},
		{"", 0, true},
		{"s", 0, true},
		{"5x", 0, true},
		{"1.5s", 0, true},
		{"-1s", 0, true},
		{"25d", 0, true}, // over HAProxy's 2^31-1 ms
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseTime(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseConfigModel(t *testing.T) {
	cfg := parse(t, `
# Bitbucket-style forwarder
global
    maxconn 10000
    daemon

defaults
    mode tcp
    retries 5
    balance leastconn
    timeout connect 500s
    timeout client 5000s
    timeout server 1h
    maxconn 300

frontend sshd
    bind *:7999
    bind 127.0.0.1:8000,127.0.0.1:8001 accept-proxy
    timeout client 1h
    default_backend ssh

backend ssh
    timeout queue 10s
    server a 10.0.0.1:7999 check inter 3s rise 4 fall 5 send-proxy-v2 maxconn 10 maxqueue 20 weight 7
    server "b" 10.0.0.2:7999 backup send-proxy # a comment

defaults
    timeout client 1s

listen both
    bind :9000
    balance first
    retries 0
    server c 10.0.0.3:22
`)
	if cfg.Global.MaxConn != 10000 {
		t.Errorf("global maxconn = %d", cfg.Global.MaxConn)
	}
	fe := cfg.Frontends[0]
	if fe.Name != "sshd" || fe.DefaultBackend != "ssh" || fe.MaxConn != 300 || fe.Timeouts.Client != time.Hour || fe.Timeouts.Connect != 500*time.Second {
		t.Errorf("frontend = %+v", fe)
	}
	wantBinds := []Bind{{":7999", false}, {"127.0.0.1:8000", true}, {"127.0.0.1:8001", true}}
	if fmt.Sprint(fe.Binds) != fmt.Sprint(wantBinds) {
		t.Errorf("binds = %v, want %v", fe.Binds, wantBinds)
	}
	be := cfg.Backend("ssh")
	if be.Balance != LeastConn || be.Retries != 5 || be.Timeouts.Server != time.Hour || be.Timeouts.Queue != 10*time.Second {
		t.Errorf("backend = %+v", be)
	}
	a, b := be.Servers[0], be.Servers[1]
	wantA := Server{Name: "a", Addr: "10.0.0.1:7999", Check: true, Inter: 3 * time.Second, Rise: 4, Fall: 5,
		SendProxy: ProxyV2, MaxConn: 10, MaxQueue: 20, Weight: 7, Line: a.Line}
	if *a != wantA {
		t.Errorf("server a = %+v\nwant %+v", *a, wantA)
	}
	if b.Name != "b" || !b.Backup || b.SendProxy != ProxyV1 || b.Check || b.inter() != DefaultInter || b.rise() != DefaultRise || b.fall() != DefaultFall {
		t.Errorf("server b = %+v", *b)
	}
	// The second defaults section replaces the first.
	both := cfg.Frontends[1]
	if both.Name != "both" || both.DefaultBackend != "both" || both.Timeouts.Client != time.Second || both.MaxConn != 0 {
		t.Errorf("listen frontend = %+v", both)
	}
	bb := cfg.Backend("both")
	if bb.Balance != First || bb.retries() != 0 || bb.Timeouts.Connect != 0 {
		t.Errorf("listen backend = %+v (retries %d)", bb, bb.retries())
	}
	if a.Line.Line != 24 || a.Line.File != "test.cfg" {
		t.Errorf("server a declared at %v", a.Line)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].String(), "test.cfg:5: 'daemon'") {
		t.Errorf("warnings = %v", cfg.Warnings)
	}
	if cfg.Listeners() != 4 {
		t.Errorf("listeners = %d", cfg.Listeners())
	}
}

// TestParseConfigErrors checks each error names its file:line, and near
// misses get a suggestion.
func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string // substrings of the error, in order
	}{
		{"mode http", "defaults\n mode http\n", []string{"test.cfg:2: 'mode http' is not supported: portfwd forwards TCP only"}},
		{"unknown keyword near miss", "frontend f\n bind :1\n defualt_backend b\n", []string{"test.cfg:3: unknown keyword 'defualt_backend' in 'frontend' section; did you mean 'default_backend' maybe ?"}},
		{"unknown keyword far", "backend b\n frobnicate 1\n", []string{"test.cfg:2: unknown keyword 'frobnicate' in 'backend' section"}},
		{"out of section", "maxconn 5\n", []string{"test.cfg:1: unknown keyword 'maxconn' out of section"}},
		{"section near miss", "fronted f\n", []string{"did you mean 'frontend'"}},
		{"server without address", "backend b\n server s\n", []string{"test.cfg:2: 'server' expects <name> and <addr>[:<port>]"}},
		{"server without port", "backend b\n server s 10.0.0.1\n", []string{"test.cfg:2: 'server b/s': address '10.0.0.1' needs a port"}},
		{"server option near miss", "backend b\n server s 10.0.0.1:22 chek\n", []string{"test.cfg:2: unknown keyword 'chek' in 'server b/s'; did you mean 'check'"}},
		{"server option without argument", "backend b\n server s 10.0.0.1:22 inter\n", []string{"test.cfg:2: 'server b/s': 'inter' expects an argument"}},
		{"bad weight", "backend b\n server s 10.0.0.1:22 weight 300\n", []string{"test.cfg:2: 'server b/s': weight must be between 0 and 256"}},
		{"missing default_backend", "frontend f\n bind :1\n default_backend nope\nbackend b\n server s 10.0.0.1:22\n", []string{"test.cfg:3: frontend \"f\": unable to find required default_backend \"nope\""}},
		{"bad time", "defaults\n timeout client 5x\n", []string{"test.cfg:2: 'timeout client': unexpected character 'x'"}},
		{"unknown timeout", "defaults\n timeout clinet 5s\n", []string{"test.cfg:2: 'timeout clinet': unknown timeout; did you mean 'client'"}},
		{"bad balance", "backend b\n balance rondrobin\n", []string{"test.cfg:2: 'balance' supports", "did you mean 'roundrobin'"}},
		{"bad bind", "frontend f\n bind nowhere\n", []string{"test.cfg:2: 'bind nowhere': invalid address"}},
		{"bind option", "frontend f\n bind :1 accept-proxi\n", []string{"did you mean 'accept-proxy'"}},
		{"bad option", "defaults\n option tcplgo\n", []string{"test.cfg:2: unknown option 'tcplgo'; did you mean 'tcplog'"}},
		{"bad maxconn", "global\n maxconn lots\n", []string{"test.cfg:2: 'maxconn' expects a non-negative integer"}},
		{"duplicate frontend", "frontend f\n bind :1\nfrontend f\n bind :2\n", []string{"test.cfg:3: frontend 'f' has the same name"}},
		{"unmatched quote", "backend \"b\n", []string{"test.cfg:1: unmatched quote"}},
		{"several errors", "backend b\n server s\n server t 1.2.3.4:5 chek\n", []string{"test.cfg:2:", "test.cfg:3:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfig(strings.NewReader(tt.text), "test.cfg")
			if err == nil {
				t.Fatalf("parsed %+v, want an error", cfg)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %v does not match ErrConfig", err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError", err)
			}
			for _, d := range ce.Diagnostics {
				if d.Pos.Line == 0 {
					t.Errorf("diagnostic without a line: %v", d)
				}
			}
			msg := err.Error()
			for _, w := range tt.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error\n%s\ndoes not contain %q", msg, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestParseConfigWarnings(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"log", "global\n log 127.0.0.1 local0\n", "test.cfg:2: 'log' has no effect"},
		{"tune", "global\n tune.bufsize 32768\n", "test.cfg:2: 'tune.bufsize' has no effect"},
		{"tcplog", "defaults\n option tcplog\n", "test.cfg:2: 'option tcplog' has no effect"},
		{"http option", "defaults\n option forwardfor\n", "test.cfg:2: 'option forwardfor' applies to HTTP mode only"},
		{"no bind", "frontend f\n default_backend b\nbackend b\n server s 1.2.3.4:5\n", "test.cfg:1: frontend 'f' has no 'bind' directive"},
		{"no backend", "frontend f\n bind :1\n", "test.cfg:1: frontend 'f' has no default_backend"},
		{"static-rr", "backend b\n balance static-rr\n", "test.cfg:2: 'balance static-rr' is handled as 'roundrobin'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, tt.text)
			var all []string
			for _, w := range cfg.Warnings {
				all = append(all, w.String())
			}
			if !strings.Contains(strings.Join(all, "\n"), tt.want) {
				t.Fatalf("warnings %q do not contain %q", all, tt.want)
			}
		})
	}
}

func TestValidateGoConfig(t *testing.T) {
	cfg := &Config{
		Frontends: []*Frontend{{Name: "f", Binds: []Bind{{Addr: "127.0.0.1"}}, DefaultBackend: "missing"}},
		Backends:  []*Backend{{Name: "b", Balance: "random", Servers: []*Server{{Name: "s", Addr: "nowhere"}}}},
	}
	err := cfg.Validate()
	for _, want := range []string{"invalid bind address", "default_backend", "unknown balance", "invalid address"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := New(cfg, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("New with an invalid config: %v", err)
	}
}

func TestSampleConfigParses(t *testing.T) {
	path := filepath.Join("..", "examples", "portfwd", "bitbucket-ssh.cfg")
	if _, err := os.Stat(path); err != nil {
		t.Skip("sample not present")
	}
	cfg, err := ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fe, be := cfg.Frontends[0], cfg.Backend("ssh")
	if fe.Name != "sshd" || fe.Binds[0].Addr != ":7999" || fe.Timeouts.Client != time.Hour ||
		be == nil || len(be.Servers) != 1 || be.Timeouts.Connect != 500*time.Second ||
		be.Timeouts.Server != time.Hour || cfg.Global.MaxConn != 10000 {
		t.Fatalf("sample parsed as %+v / %+v", fe, be)
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ word, want string }{
		{"chek", "check"},
		{"defualt_backend", "default_backend"},
		{"backup", "backup"},
		{"zzzzzz", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.word, append(serverWords, proxyWords...)); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}
