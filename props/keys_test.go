package props

import (
	"os"
	"strings"
	"testing"
)

// TestDocListsEveryKey checks that the key listing in doc.go follows the table:
// every key of KnownKeys starts a line of it, with its default on that line.
func TestDocListsEveryKey(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(string(src), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(l, "//"))
		if key, rest, ok := strings.Cut(l, " "); ok {
			lines[key] = rest
		}
	}
	for _, k := range KnownKeys() {
		rest, ok := lines[k.Key]
		if !ok {
			t.Errorf("doc.go does not list %s", k.Key)
			continue
		}
		if !strings.Contains(rest, k.Default) {
			t.Errorf("doc.go lists %s without its default %q", k.Key, k.Default)
		}
	}
}

// TestEveryKeyFillsItsField checks that each key of the table fills a field of
// its own: setting the key alone to a value other than its default changes
// the Config, and no two keys fill the same field.
func TestEveryKeyFillsItsField(t *testing.T) {
	values := map[string]string{
		KeyServerPort: "1", KeyServerProxyPort: "2", KeySSHPort: "3", KeyMeshSidecarDefaultPort: "4",
		KeyServerScheme: "https", KeyServerSecure: "true", KeyServerSSLEnabled: "true",
		KeySSHProxyProtocol: "required", KeySSHProxyProtocolTrusted: "10.0.0.0/8",
		KeySSHBaseURL: "ssh://git@h", KeySetupBaseURL: "https://h", KeyMirroringUpstreamURL: "https://u",
		KeyApplicationMode: "mirror", KeyMirroringSyncInterval: "5m", KeyMirroringUpstreamType: "server",
		KeyLFSMaxObjectSize: "512m", KeyLFSGracePeriod: "2h",
		KeyMirroringReadyUpstreamOutage: "2m",
		KeyMeshPackCacheEnabled:         "false", KeyMeshPackCacheMaxSize: "2g", KeyMeshPackCacheMaxAge: "5m",
		KeyMeshPackObjectsPerRepo: "3",
	}
	base := configSummary(Defaults())
	seen := map[string]string{}
	for _, k := range KnownKeys() {
		v, ok := values[k.Key]
		if !ok {
			v = "x"
		}
		if v == k.Default {
			continue // a key with a single choice cannot change the Config
		}
		c, err := New(mustParse(t, EscapeKey(k.Key)+"="+EscapeValue(v)), []string{}).Config()
		if err != nil {
			t.Errorf("%s=%s: %v", k.Key, v, err)
			continue
		}
		got := configSummary(c)
		if got == base {
			t.Errorf("%s=%s does not change the Config", k.Key, v)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("%s and %s fill the same field", k.Key, other)
		}
		seen[got] = k.Key
	}
}
