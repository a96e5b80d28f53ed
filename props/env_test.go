package props

import (
	"slices"
	"testing"

	"github.com/gitfleet/gitfleet"
)

func TestEnvForms(t *testing.T) {
	tests := []struct {
		key  string
		want []string
	}{
		{"server.port", []string{"SERVER_PORT"}},
		{"server.proxy-name", []string{"SERVER_PROXYNAME", "SERVER_PROXY_NAME"}},
		{"setup.baseUrl", []string{"SETUP_BASEURL"}},
		{"plugin.ssh.disabled.ciphers[0]", []string{"PLUGIN_SSH_DISABLED_CIPHERS_0_"}},
		{"plugin.bitbucket-git.mesh.sidecar.default-port", []string{"PLUGIN_BITBUCKETGIT_MESH_SIDECAR_DEFAULTPORT", "PLUGIN_BITBUCKET_GIT_MESH_SIDECAR_DEFAULT_PORT"}},
	}
	for _, tt := range tests {
		if got := envForms(tt.key); !slices.Equal(got, tt.want) {
			t.Errorf("envForms(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	const file = "server.proxy-name=file.example.com\nmy.custom-key=file\nserver.port=7990\n"
	tests := []struct {
		name    string
		environ []string
		key     string
		want    string // "" with wantSrc "" means not set
		wantSrc string
	}{
		{"file value without environment", nil, "server.proxy-name", "file.example.com", "t.properties:1"},
		{"underscore form", []string{"SERVER_PROXY_NAME=env.example.com"}, "server.proxy-name", "env.example.com", "env SERVER_PROXY_NAME"},
		{"dash removed form", []string{"SERVER_PROXYNAME=env.example.com"}, "server.proxy-name", "env.example.com", "env SERVER_PROXYNAME"},
		{"dash removed wins over underscore", []string{"SERVER_PROXYNAME=a", "SERVER_PROXY_NAME=b"}, "server.proxy-name", "a", "env SERVER_PROXYNAME"},
		{"same form: later variable wins", []string{"SERVER_PORT=1", "SERVER_PORT=2"}, "server.port", "2", "env SERVER_PORT"},
		{"known key absent from file", []string{"PLUGIN_SSH_PORT=2222"}, "plugin.ssh.port", "2222", "env PLUGIN_SSH_PORT"},
		{"camel case key", []string{"SETUP_BASEURL=https://x.example.com"}, "setup.baseUrl", "https://x.example.com", "env SETUP_BASEURL"},
		{"file-only key", []string{"MY_CUSTOM_KEY=env"}, "my.custom-key", "env", "env MY_CUSTOM_KEY"},
		{"list index with trailing underscore", []string{"PLUGIN_SSH_DISABLED_MACS_0_=hmac-md5"}, "plugin.ssh.disabled.macs[0]", "hmac-md5", "env PLUGIN_SSH_DISABLED_MACS_0_"},
		{"list index without trailing underscore", []string{"PLUGIN_SSH_DISABLED_MACS_1=hmac-sha1"}, "plugin.ssh.disabled.macs[1]", "hmac-sha1", "env PLUGIN_SSH_DISABLED_MACS_1"},
		{"lower case does not bind", []string{"server_port=1"}, "server.port", "7990", "t.properties:3"},
		{"unrelated variable ignored", []string{"HOME=/root", "PATH=/bin"}, "HOME", "", ""},
		{"empty value overrides", []string{"SERVER_PROXY_NAME="}, "server.proxy-name", "", "env SERVER_PROXY_NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			environ := tt.environ
			if environ == nil {
				environ = []string{}
			}
			p := New(mustParse(t, file), environ)
			e, ok := p.Lookup(tt.key)
			if tt.wantSrc == "" {
				if ok {
					t.Errorf("%s is set to %q from %s", tt.key, e.Value, e.Source)
				}
				return
			}
			if !ok || e.Value != tt.want || e.Source.String() != tt.wantSrc {
				t.Errorf("Lookup(%q) = %q from %q (set %v), want %q from %q", tt.key, e.Value, e.Source, ok, tt.want, tt.wantSrc)
			}
		})
	}
}

func TestEnvironmentReachesConfig(t *testing.T) {
	p := New(mustParse(t, "server.proxy-name=file.example.com\nserver.port=7990\n"),
		[]string{"SERVER_PROXY_NAME=env.example.com", "SERVER_PORT=8990", "PLUGIN_SSH_PROXYPROTOCOL_TRUSTED=10.0.0.0/8", "PLUGIN_SSH_PROXY_PROTOCOL=required"})
	c, err := p.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.ProxyName != "env.example.com" || c.Server.Port != 8990 || c.SSH.ProxyProtocol != gitfleet.ProxyRequired || len(c.SSH.ProxyTrusted) != 1 {
		t.Errorf("config = %+v %+v", c.Server, c.SSH)
	}
	if got := c.Source(KeyServerPort).String(); got != "env SERVER_PORT" {
		t.Errorf("source of server.port = %q", got)
	}
	if ps := c.Validate(); len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
}
