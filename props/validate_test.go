package props

import (
	"strconv"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	const mirror = "application.mode=mirror\nsetup.baseUrl=https://mirror.example.com\nplugin.mirroring.upstream.url=https://primary.example.com\n"
	tests := []struct {
		name string
		in   string
		want []string // "severity key line: message part"
	}{
		{"valid primary", "server.port=7990\n", nil},
		{"valid mirror", mirror, nil},
		{"port out of range", "server.port=70000\nplugin.ssh.port=0\nplugin.bitbucket-git.mesh.sidecar.default-port=-1\nserver.proxy-port=65536",
			[]string{"error server.port 1: out of range", "error plugin.ssh.port 2: out of range", "error plugin.bitbucket-git.mesh.sidecar.default-port 3: out of range", "error server.proxy-port 4: out of range"}},
		{"empty and zero proxy port mean unset", "server.proxy-port=\nserver.proxy-port=0", nil},
		{"empty values take the defaults", "server.port=\nplugin.ssh.port= \napplication.mode=\nserver.ssl.enabled=", nil},
		{"same port twice", "server.port=7999", []string{"error plugin.ssh.port 0: also the HTTP port"}},
		{"mirror without URLs", "application.mode=mirror", []string{"error plugin.mirroring.upstream.url 0: URL of its primary", "error setup.baseUrl 0: own base URL"}},
		{"upstream without https", "application.mode=mirror\nsetup.baseUrl=https://m.example.com\nplugin.mirroring.upstream.url=http://p.example.com",
			[]string{"error plugin.mirroring.upstream.url 3: the primary server URL must include the https:// prefix"}},
		{"mirror base URL without https", "application.mode=mirror\nsetup.baseUrl=http://m.example.com\nplugin.mirroring.upstream.url=https://p.example.com",
			[]string{"error setup.baseUrl 2: over HTTPS"}},
		{"ssl without certificate and key", "server.ssl.enabled=true", []string{"error server.ssl.certificate 0: no certificate", "error server.ssl.certificate-private-key 0: no private key"}},
		{"base URL with another scheme", "setup.baseUrl=ftp://x.example.com", []string{"error setup.baseUrl 1: not http or https"}},
		{"empty value keeps its source", "server.ssl.enabled=true\nserver.ssl.certificate=\nserver.ssl.certificate-private-key=/k.pem", []string{"error server.ssl.certificate 2: no certificate"}},
		{"ssl without key", "server.ssl.enabled=true\nserver.ssl.certificate=/c.pem", []string{"error server.ssl.certificate-private-key 0: no private key"}},
		{"proxy required without networks", "plugin.ssh.proxy-protocol=required", []string{"error plugin.ssh.proxy-protocol.trusted 0: every SSH connection would be refused"}},
		{"proxy optional without networks", "plugin.ssh.proxy-protocol=optional", []string{"warning plugin.ssh.proxy-protocol.trusted 0: ignored from everyone"}},
		{"non-positive interval", "plugin.mirroring.synchronization.interval=0s", []string{"error plugin.mirroring.synchronization.interval 1: not positive"}},
		{"near miss", "plugin.bitbucket-git.mesh.sidecar.defualt-port=7778", []string{"warning plugin.bitbucket-git.mesh.sidecar.defualt-port 1: did you mean plugin.bitbucket-git.mesh.sidecar.default-port?"}},
		{"near miss in case", "setup.baseurl=https://x.example.com", []string{"warning setup.baseurl 1: did you mean setup.baseUrl?"}},
		{"near miss of an indexed key", "plugin.ssh.disabled.cipher[0]=x", []string{"warning plugin.ssh.disabled.cipher[0] 1: did you mean plugin.ssh.disabled.ciphers[0]?"}},
		{"unknown key far from any", "jdbc.url=jdbc:x", []string{"warning jdbc.url 1: unknown key; it is ignored"}},
		{"errors before warnings, all at once", "jdbc.user=x\nserver.port=0\napplication.mode=mirror",
			[]string{"error server.port 2: out of range", "error plugin.mirroring.upstream.url 0: primary", "error setup.baseUrl 0: base URL", "warning jdbc.user 1: unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := Check(New(mustParse(t, tt.in), []string{}))
			if len(ps) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(tt.want), ps)
			}
			for i, w := range tt.want {
				head, msg, _ := strings.Cut(w, ": ")
				p := ps[i]
				got := p.Severity.String() + " " + p.Key + " " + strconv.Itoa(p.Source.Line)
				if got != head || !strings.Contains(p.Message, msg) {
					t.Errorf("problem %d = %q (%s), want %q", i, got, p.Message, w)
				}
				if p.Severity == Error && p.Fix == "" {
					t.Errorf("problem %d has no fix: %v", i, p)
				}
			}
		})
	}
}

func TestProblemsAPI(t *testing.T) {
	_, ps := Check(New(mustParse(t, "server.port=0\nx.y=1\n"), []string{}))
	if len(ps.Errors()) != 1 || len(ps.Warnings()) != 1 {
		t.Fatalf("errors %v, warnings %v", ps.Errors(), ps.Warnings())
	}
	err := ps.Err()
	if err == nil || !strings.Contains(err.Error(), "t.properties:1: error: server.port: port 0 is out of range; fix: use a port from 1 to 65535") {
		t.Errorf("Err() = %v", err)
	}
	if strings.Contains(err.Error(), "x.y") {
		t.Errorf("Err() includes warnings: %v", err)
	}
	if ps.Warnings().Err() != nil {
		t.Error("Err() of warnings only is not nil")
	}
}

func TestSuggestKey(t *testing.T) {
	tests := map[string]string{
		"plugin.bitbucket-git.mesh.sidecar.defualt-port": KeyMeshSidecarDefaultPort,
		"server.prot":                    KeyServerPort,
		"server.proxyname":               KeyServerProxyName,
		"plugin.ssh.base-url":            KeySSHBaseURL,
		"application.mdoe":               KeyApplicationMode,
		"server.port":                    "",
		"jdbc.url":                       "",
		"feature.public.access":          "",
		"plugin.mirroring.upstream.urls": KeyMirroringUpstreamURL,
	}
	for in, want := range tests {
		if got := SuggestKey(in); got != want {
			t.Errorf("SuggestKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIsKnownKey(t *testing.T) {
	for key, want := range map[string]bool{
		KeyServerPort: true, "plugin.ssh.disabled.macs[3]": true, "setup.baseurl": false, "jdbc.url": false, "": false, "server.port[0]": false,
	} {
		if got := IsKnownKey(key); got != want {
			t.Errorf("IsKnownKey(%q) = %v", key, got)
		}
	}
	for _, k := range KnownKeys() {
		if k.Doc == "" {
			t.Errorf("%s has no description", k.Key)
		}
	}
}
