package props

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
)

func TestDefaults(t *testing.T) {
	c := Defaults()
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.port", c.Server.Port, 7990},
		{"server.scheme", c.Server.Scheme, "http"},
		{"server.secure", c.Server.Secure, false},
		{"server.proxy-port", c.Server.ProxyPort, 0},
		{"server.ssl.enabled", c.Server.SSL.Enabled, false},
		{"plugin.ssh.port", c.SSH.Port, 7999},
		{"plugin.ssh.proxy-protocol", c.SSH.ProxyProtocol, gitfleet.ProxyOff},
		{"mesh default port", c.Mesh.SidecarDefaultPort, 7777},
		{"application.mode", c.Mode, ModeDefault},
		{"upstream type", c.Mirroring.UpstreamType, "server"},
		{"sync interval", c.Mirroring.SyncInterval, 3 * time.Minute},
		{"public base URL", c.PublicBaseURL(), "http://localhost:7990"},
		{"SSH base URL", c.SSHBaseURL(), "ssh://git@localhost:7999"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	if ps := c.Validate(); len(ps) != 0 {
		t.Errorf("defaults have problems: %v", ps)
	}
	if !c.Source(KeyServerPort).IsDefault() {
		t.Errorf("source of a default = %v", c.Source(KeyServerPort))
	}
}

// configOf loads in and converts it, failing on conversion problems.
func configOf(t *testing.T, in string) *Config {
	t.Helper()
	c, err := New(mustParse(t, in), []string{}).Config()
	if err != nil {
		t.Fatalf("Config(%q): %v", in, err)
	}
	return c
}

func TestBooleans(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "TRUE": true, "True": true, "false": false, "FaLsE": false, " true ": true, "": false} {
		if got := configOf(t, "server.secure="+in).Server.Secure; got != want {
			t.Errorf("server.secure=%q gives %v", in, got)
		}
	}
	for _, in := range []string{"yes", "1", "on", "t", "tru"} {
		_, err := New(mustParse(t, "server.secure="+in), []string{}).Config()
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Key != KeyServerSecure || ps[0].Source.Line != 1 {
			t.Errorf("server.secure=%q: %v, want one problem at line 1", in, err)
		}
	}
}

func TestDurations(t *testing.T) {
	good := map[string]time.Duration{
		"3m": 3 * time.Minute, "180s": 3 * time.Minute, "1h": time.Hour, "180": 3 * time.Minute,
		"500ms": 500 * time.Millisecond, "1d": 24 * time.Hour, "PT3M": 3 * time.Minute, "pt1h30m": 90 * time.Minute,
		"P1DT2S": 24*time.Hour + 2*time.Second, "1m30s": 90 * time.Second, " 2m ": 2 * time.Minute,
	}
	for in, want := range good {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "3 minutes", "m", "P", "PT", "1.5", "3x"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
	if got := configOf(t, "plugin.mirroring.synchronization.interval=90").Mirroring.SyncInterval; got != 90*time.Second {
		t.Errorf("interval 90 = %v, want 90s", got)
	}
}

func TestLists(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"plugin.ssh.disabled.ciphers=a,b , c,,", []string{"a", "b", "c"}},
		{"plugin.ssh.disabled.ciphers=", nil},
		{"plugin.ssh.disabled.ciphers[1]=b\nplugin.ssh.disabled.ciphers[0]=a", []string{"a", "b"}},
		{"plugin.ssh.disabled.ciphers=x,y\nplugin.ssh.disabled.ciphers[0]=a", []string{"a"}},
		{"plugin.ssh.disabled.ciphers[0]=a,b\nplugin.ssh.disabled.ciphers[2]=c", []string{"a,b", "c"}},
		{"plugin.ssh.disabled.ciphers=a\\\n  ,b", []string{"a", "b"}},
	}
	for _, tt := range tests {
		if got := configOf(t, tt.in).SSH.DisabledCiphers; !slices.Equal(got, tt.want) {
			t.Errorf("%q: ciphers %q, want %q", tt.in, got, tt.want)
		}
	}
	const file = "plugin.ssh.disabled.ciphers[0]=f0\nplugin.ssh.disabled.ciphers[1]=f1\n"
	envTests := []struct {
		environ []string
		want    []string
		source  string
	}{
		{[]string{}, []string{"f0", "f1"}, "t.properties:1"},
		{[]string{"PLUGIN_SSH_DISABLED_CIPHERS=e0,e1,e2"}, []string{"e0", "e1", "e2"}, "env PLUGIN_SSH_DISABLED_CIPHERS"},
		{[]string{"PLUGIN_SSH_DISABLED_CIPHERS_1_=e1"}, []string{"e1"}, "env PLUGIN_SSH_DISABLED_CIPHERS_1_"},
	}
	for _, tt := range envTests {
		c, err := New(mustParse(t, file), tt.environ).Config()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.SSH.DisabledCiphers; !slices.Equal(got, tt.want) {
			t.Errorf("env %q: ciphers %q, want %q", tt.environ, got, tt.want)
		}
		if got := c.Source(KeySSHDisabledCiphers).String(); got != tt.source {
			t.Errorf("env %q: source %q, want %q", tt.environ, got, tt.source)
		}
	}
}

func TestCIDRs(t *testing.T) {
	c := configOf(t, "plugin.ssh.proxy-protocol.trusted=10.1.2.3/8, 192.0.2.7,::1, 2001:db8::/32")
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("2001:db8::/32"),
	}
	if !slices.Equal(c.SSH.ProxyTrusted, want) {
		t.Errorf("trusted = %v, want %v", c.SSH.ProxyTrusted, want)
	}
	_, err := New(mustParse(t, "plugin.ssh.proxy-protocol.trusted=10.0.0.0/8,bogus,300.1.1.1"), []string{}).Config()
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 {
		t.Errorf("bad networks: %v, want two problems", err)
	}
}

func TestConversionProblems(t *testing.T) {
	in := "server.port=http\nplugin.ssh.port=22x\napplication.mode=primary\nsetup.baseUrl=example.com\nplugin.mirroring.synchronization.interval=soon\nserver.ssl.enabled=maybe\nplugin.ssh.proxy-protocol=on\nserver.scheme=ftp\n"
	c, err := New(mustParse(t, in), []string{}).Config()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Config() = %v, want Problems", err)
	}
	want := []string{KeyServerPort, KeySSHPort, KeyApplicationMode, KeySetupBaseURL, KeyMirroringSyncInterval, KeyServerSSLEnabled, KeySSHProxyProtocol, KeyServerScheme}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), ps)
	}
	for i, key := range want {
		if ps[i].Key != key || ps[i].Source.Line != i+1 || ps[i].Fix == "" || ps[i].Severity != Error {
			t.Errorf("problem %d = %+v, want %s at line %d with a fix", i, ps[i], key, i+1)
		}
	}
	// Bad values fall back to the defaults, so the Config is still usable.
	if c.Server.Port != 7990 || c.SSH.Port != 7999 || c.Mode != ModeDefault || c.Mirroring.SyncInterval != 3*time.Minute {
		t.Errorf("fallbacks: %+v %+v %v %+v", c.Server, c.SSH, c.Mode, c.Mirroring)
	}
}

func TestDerivedURLs(t *testing.T) {
	tests := []struct {
		name, in, public, ssh string
	}{
		{"defaults", "", "http://localhost:7990", "ssh://git@localhost:7999"},
		{"setup.baseUrl wins", "setup.baseUrl=https://git.example.com/\nserver.proxy-name=other", "https://git.example.com", "ssh://git@git.example.com:7999"},
		{"proxy with default https port", "server.proxy-name=git.example.com\nserver.proxy-port=443\nserver.scheme=https", "https://git.example.com", "ssh://git@git.example.com:7999"},
		{"proxy with default http port", "server.proxy-name=git.example.com\nserver.proxy-port=80", "http://git.example.com", "ssh://git@git.example.com:7999"},
		{"proxy with other port", "server.proxy-name=git.example.com\nserver.proxy-port=8443\nserver.scheme=https", "https://git.example.com:8443", "ssh://git@git.example.com:7999"},
		{"proxy without port uses server.port", "server.proxy-name=git.example.com", "http://git.example.com:7990", "ssh://git@git.example.com:7999"},
		{"context path", "server.proxy-name=h\nserver.proxy-port=80\nserver.context-path=bitbucket/", "http://h/bitbucket", "ssh://git@h:7999"},
		{"address", "server.address=192.0.2.1\nserver.port=80", "http://192.0.2.1", "ssh://git@192.0.2.1:7999"},
		{"wildcard address", "server.address=0.0.0.0", "http://localhost:7990", "ssh://git@localhost:7999"},
		{"IPv6 address", "server.address=::1", "http://[::1]:7990", "ssh://git@[::1]:7999"},
		{"SSH port 22 left out", "server.proxy-name=h\nplugin.ssh.port=22", "http://h:7990", "ssh://git@h"},
		{"explicit SSH base URL", "plugin.ssh.baseurl=ssh://git@ssh.example.com/", "http://localhost:7990", "ssh://git@ssh.example.com"},
		{"ssl enabled implies https", "server.ssl.enabled=true\nserver.ssl.certificate=c.pem\nserver.ssl.certificate-private-key=k.pem\nserver.port=443", "https://localhost", "ssh://git@localhost:7999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configOf(t, tt.in)
			if got := c.PublicBaseURL(); got != tt.public {
				t.Errorf("PublicBaseURL = %q, want %q", got, tt.public)
			}
			if got := c.SSHBaseURL(); got != tt.ssh {
				t.Errorf("SSHBaseURL = %q, want %q", got, tt.ssh)
			}
		})
	}
}

func TestConcurrentReads(t *testing.T) {
	p := New(mustParse(t, "server.proxy-name=${HOST:git.example.com}\nplugin.ssh.port=${SSH:7999}\n"), []string{"SSH=2222"})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				c, err := p.Config()
				if err != nil {
					errs <- err
					return
				}
				if c.SSHBaseURL() != "ssh://git@git.example.com:2222" {
					errs <- errors.New("SSH base URL " + c.SSHBaseURL())
					return
				}
				if _, _, err := p.Resolve(KeyServerProxyName); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLFSMaxObjectSizeKey(t *testing.T) {
	for in, want := range map[string]int64{"512m": 512 << 20, "5G": 5 << 30, "-1": -1, "1234": 1234} {
		if got := configOf(t, "plugin.gitfleet.lfs.max-object-size="+in).Mesh.LFSMaxObjectSize; got != want {
			t.Errorf("plugin.gitfleet.lfs.max-object-size=%s: %d, want %d", in, got, want)
		}
	}
	if got := Defaults().Mesh.LFSMaxObjectSize; got != 5<<30 {
		t.Errorf("default LFS limit %d", got)
	}
}
