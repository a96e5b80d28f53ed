package props

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
)

// Keys of bitbucket.properties that the SDK understands. Each is described once,
// in KnownKeys.
const (
	KeyServerPort                = "server.port"
	KeyServerAddress             = "server.address"
	KeyServerProxyName           = "server.proxy-name"
	KeyServerProxyPort           = "server.proxy-port"
	KeyServerScheme              = "server.scheme"
	KeyServerSecure              = "server.secure"
	KeyServerContextPath         = "server.context-path"
	KeyServerSSLEnabled          = "server.ssl.enabled"
	KeyServerSSLCertificate      = "server.ssl.certificate"
	KeyServerSSLCertificateKey   = "server.ssl.certificate-private-key"
	KeySSHPort                   = "plugin.ssh.port"
	KeySSHBaseURL                = "plugin.ssh.baseurl"
	KeySSHDisabledCiphers        = "plugin.ssh.disabled.ciphers"
	KeySSHDisabledKeyExchanges   = "plugin.ssh.disabled.key.exchanges"
	KeySSHDisabledMACs           = "plugin.ssh.disabled.macs"
	KeySSHProxyProtocol          = "plugin.ssh.proxy-protocol"
	KeySSHProxyProtocolTrusted   = "plugin.ssh.proxy-protocol.trusted"
	KeySSHTrustedUserCAKeys      = "plugin.ssh.trusted.user.ca.keys"
	KeySSHRevokedKeys            = "plugin.ssh.revoked.keys"
	KeyMeshSidecarDefaultPort    = "plugin.bitbucket-git.mesh.sidecar.default-port"
	KeyLFSMaxObjectSize          = "plugin.gitfleet.lfs.max-object-size"
	KeyLFSGracePeriod            = "plugin.gitfleet.lfs.grace-period"
	KeyMeshPackCacheEnabled      = "plugin.bitbucket-git.mesh.pack-cache.enabled"
	KeyMeshPackCacheMaxSize      = "plugin.bitbucket-git.mesh.pack-cache.max-size"
	KeyMeshPackCacheMaxAge       = "plugin.bitbucket-git.mesh.pack-cache.max-age"
	KeyMeshPackCacheDir          = "plugin.bitbucket-git.mesh.pack-cache.dir"
	KeyMeshPackObjectsPerRepo    = "plugin.bitbucket-git.mesh.pack-objects.max-per-repository"
	KeyApplicationMode           = "application.mode"
	KeySetupDisplayName          = "setup.displayName"
	KeySetupBaseURL              = "setup.baseUrl"
	KeySetupSysadminUsername     = "setup.sysadmin.username"
	KeySetupSysadminPassword     = "setup.sysadmin.password"
	KeySetupSysadminDisplayName  = "setup.sysadmin.displayName"
	KeySetupSysadminEmailAddress = "setup.sysadmin.emailAddress"
	KeyMirroringUpstreamURL      = "plugin.mirroring.upstream.url"
	KeyMirroringUpstreamType     = "plugin.mirroring.upstream.type"
	KeyMirroringSyncInterval     = "plugin.mirroring.synchronization.interval"
	KeyMirroringFarmJoinToken    = "plugin.mirroring.farm.join-token"
	// KeyMirroringReadyUpstreamOutage is a key of our own: how long a mirror
	// may fail to reach the upstream before its readiness check fails.
	KeyMirroringReadyUpstreamOutage = "plugin.mirroring.readiness.upstream-outage"
)

// KeyInfo describes one key the SDK understands: its name, Bitbucket's default,
// a line of documentation, how its value is converted, the Config field it
// fills, and the rule its value alone must follow. Conversion, defaults,
// environment binding, validation and "did you mean" suggestions all read it
// from KnownKeys.
type KeyInfo struct {
	Key     string // the property's name, such as "server.port"
	Default string // Bitbucket's default; empty when there is none
	Doc     string // what the key sets, in one line

	field field // how the value is converted and which Config field it fills
	// check is the key's own rule on its converted value, nil for none: it
	// returns the problem's message and fix, or two empty strings. Rules
	// between keys are in Config.Validate.
	check func(c *Config) (msg, fix string)
}

// KnownKeys returns every key the SDK understands, in a stable order.
func KnownKeys() []KeyInfo {
	return []KeyInfo{
		{Key: KeyServerPort, Default: "7990", Doc: "HTTP port the server listens on",
			field: port(func(c *Config) *int { return &c.Server.Port })},
		{Key: KeyServerAddress, Doc: "address the HTTP server binds; empty means all",
			field: text(func(c *Config) *string { return &c.Server.Address }, strings.TrimSpace)},
		{Key: KeyServerProxyName, Doc: "host name users reach the server by through a reverse proxy",
			field: text(func(c *Config) *string { return &c.Server.ProxyName }, strings.TrimSpace)},
		{Key: KeyServerProxyPort, Doc: "port users reach the server by through a reverse proxy",
			field: port(func(c *Config) *int { return &c.Server.ProxyPort })},
		{Key: KeyServerScheme, Default: "http", Doc: "scheme users reach the server by",
			field: oneOf(func(c *Config) *string { return &c.Server.Scheme }, "http", "https"),
			check: func(c *Config) (string, string) {
				return notOneOf("scheme ", c.Server.Scheme, "http", "https")
			}},
		{Key: KeyServerSecure, Default: "false", Doc: "whether requests count as secure (behind a TLS-terminating proxy)",
			field: boolean(func(c *Config) *bool { return &c.Server.Secure })},
		{Key: KeyServerContextPath, Doc: "path prefix of the web application, such as /bitbucket",
			field: text(func(c *Config) *string { return &c.Server.ContextPath }, contextPath)},
		{Key: KeyServerSSLEnabled, Default: "false", Doc: "serve HTTPS directly",
			field: boolean(func(c *Config) *bool { return &c.Server.SSL.Enabled })},
		{Key: KeyServerSSLCertificate, Doc: "PEM certificate chain for HTTPS",
			field: text(func(c *Config) *string { return &c.Server.SSL.Certificate }, strings.TrimSpace)},
		{Key: KeyServerSSLCertificateKey, Doc: "PEM private key for HTTPS",
			field: text(func(c *Config) *string { return &c.Server.SSL.CertificatePrivateKey }, strings.TrimSpace)},
		{Key: KeySSHPort, Default: "7999", Doc: "SSH port for Git",
			field: port(func(c *Config) *int { return &c.SSH.Port })},
		{Key: KeySSHBaseURL, Doc: "SSH base URL shown to users, such as ssh://git@host:7999",
			field: absURL(func(c *Config) *string { return &c.SSH.BaseURL })},
		{Key: KeySSHDisabledCiphers, Doc: "SSH ciphers to refuse",
			field: list(func(c *Config) *[]string { return &c.SSH.DisabledCiphers })},
		{Key: KeySSHDisabledKeyExchanges, Doc: "SSH key exchanges to refuse",
			field: list(func(c *Config) *[]string { return &c.SSH.DisabledKeyExchanges })},
		{Key: KeySSHDisabledMACs, Doc: "SSH MACs to refuse",
			field: list(func(c *Config) *[]string { return &c.SSH.DisabledMACs })},
		{Key: KeySSHProxyProtocol, Default: "off", Doc: "PROXY protocol policy of the SSH port (gitfleet)",
			field: parsedOneOf(func(c *Config) *gitfleet.ProxyPolicy { return &c.SSH.ProxyProtocol },
				gitfleet.ParseProxyPolicy, "off", "optional", "required"),
			check: func(c *Config) (string, string) {
				return notOneOf("", c.SSH.ProxyProtocol.String(), "off", "optional", "required")
			}},
		{Key: KeySSHProxyProtocolTrusted, Doc: "networks whose PROXY headers are believed (gitfleet)",
			field: networks(func(c *Config) *[]netip.Prefix { return &c.SSH.ProxyTrusted })},
		{Key: KeySSHTrustedUserCAKeys, Doc: "file of certificate authority keys whose user certificates log in (gitfleet)",
			field: text(func(c *Config) *string { return &c.SSH.TrustedUserCAKeys }, strings.TrimSpace)},
		{Key: KeySSHRevokedKeys, Doc: "file of revoked keys, certificate serials and key IDs (gitfleet)",
			field: text(func(c *Config) *string { return &c.SSH.RevokedKeys }, strings.TrimSpace)},
		{Key: KeyMeshSidecarDefaultPort, Default: "7777", Doc: "loopback port the storage sidecar tries first",
			field: port(func(c *Config) *int { return &c.Mesh.SidecarDefaultPort })},
		{Key: KeyLFSMaxObjectSize, Default: "5g", Doc: "largest Git LFS object accepted, in bytes or with k, m or g; -1: no limit (gitfleet)",
			field: size(func(c *Config) *int64 { return &c.Mesh.LFSMaxObjectSize })},
		{Key: KeyLFSGracePeriod, Default: "24h", Doc: "how long an LFS object no ref reaches is kept (gitfleet)",
			field: duration(func(c *Config) *time.Duration { return &c.Mesh.LFSGracePeriod })},
		{Key: KeyMeshPackCacheEnabled, Default: "true", Doc: "whether the store caches packs for clones and fetches (gitfleet)",
			field: boolean(func(c *Config) *bool { return &c.Mesh.PackCacheEnabled })},
		{Key: KeyMeshPackCacheMaxSize, Default: "1g", Doc: "size limit of the pack cache on disk, in bytes, or with k, m or g (gitfleet)",
			field: size(func(c *Config) *int64 { return &c.Mesh.PackCacheMaxSize })},
		{Key: KeyMeshPackCacheMaxAge, Default: "1h", Doc: "how long a cached pack nobody asks for is kept (gitfleet)",
			field: duration(func(c *Config) *time.Duration { return &c.Mesh.PackCacheMaxAge })},
		{Key: KeyMeshPackCacheDir, Doc: "directory of the pack cache; empty for <repositories>/.mesh/pack-cache (gitfleet)",
			field: text(func(c *Config) *string { return &c.Mesh.PackCacheDir }, strings.TrimSpace)},
		{Key: KeyMeshPackObjectsPerRepo, Default: "0", Doc: "uncached pack-objects runs at once per repository; 0 for the number of CPUs, negative for no bound (gitfleet)",
			field: integer(func(c *Config) *int { return &c.Mesh.PackObjectsPerRepository })},
		{Key: KeyApplicationMode, Default: "default", Doc: "default for a primary, mirror for a smart mirror",
			field: oneOf(func(c *Config) *Mode { return &c.Mode }, ModeDefault, ModeMirror),
			check: func(c *Config) (string, string) {
				return notOneOf("application mode ", string(c.Mode), string(ModeDefault), string(ModeMirror))
			}},
		{Key: KeySetupDisplayName, Doc: "instance name, applied on first start",
			field: text(func(c *Config) *string { return &c.Setup.DisplayName }, nil)},
		{Key: KeySetupBaseURL, Doc: "public base URL, applied on first start",
			field: absURL(func(c *Config) *string { return &c.Setup.BaseURL }),
			check: func(c *Config) (string, string) {
				if c.Setup.BaseURL == "" {
					return "", ""
				}
				if u, err := url.Parse(c.Setup.BaseURL); err == nil && u.Scheme != "http" && u.Scheme != "https" {
					return fmt.Sprintf("scheme %q is not http or https", u.Scheme),
						"set " + KeySetupBaseURL + " to the URL users open in a browser, such as https://bitbucket.example.com"
				}
				return "", ""
			}},
		{Key: KeySetupSysadminUsername, Doc: "first administrator's user name",
			field: text(func(c *Config) *string { return &c.Setup.Sysadmin.Username }, nil)},
		{Key: KeySetupSysadminPassword, Doc: "first administrator's password",
			field: text(func(c *Config) *string { return &c.Setup.Sysadmin.Password }, nil)},
		{Key: KeySetupSysadminDisplayName, Doc: "first administrator's display name",
			field: text(func(c *Config) *string { return &c.Setup.Sysadmin.DisplayName }, nil)},
		{Key: KeySetupSysadminEmailAddress, Doc: "first administrator's e-mail address",
			field: text(func(c *Config) *string { return &c.Setup.Sysadmin.EmailAddress }, strings.TrimSpace)},
		{Key: KeyMirroringUpstreamURL, Doc: "the primary server's https:// URL (mirror mode)",
			field: absURL(func(c *Config) *string { return &c.Mirroring.UpstreamURL })},
		{Key: KeyMirroringUpstreamType, Default: "server", Doc: "kind of upstream (mirror mode)",
			field: oneOf(func(c *Config) *string { return &c.Mirroring.UpstreamType }, "server")},
		{Key: KeyMirroringSyncInterval, Default: "3m", Doc: "how often a mirror compares all repositories with the upstream",
			field: duration(func(c *Config) *time.Duration { return &c.Mirroring.SyncInterval }),
			check: func(c *Config) (string, string) {
				if d := c.Mirroring.SyncInterval; d <= 0 {
					return fmt.Sprintf("interval %s is not positive", d), "use a positive duration such as 3m"
				}
				return "", ""
			}},
		{Key: KeyMirroringFarmJoinToken, Doc: "join token of a mirror farm: the node joins it without a new approval (gitfleet)",
			field: text(func(c *Config) *string { return &c.Mirroring.FarmJoinToken }, strings.TrimSpace)},
		{Key: KeyMirroringReadyUpstreamOutage, Default: "60s", Doc: "how long a mirror may fail to reach the upstream before GET /status/ready answers 503",
			field: duration(func(c *Config) *time.Duration { return &c.Mirroring.ReadyUpstreamOutage }),
			check: func(c *Config) (string, string) {
				if d := c.Mirroring.ReadyUpstreamOutage; d <= 0 {
					return fmt.Sprintf("limit %s is not positive", d), "use a positive duration such as 60s"
				}
				return "", ""
			}},
	}
}

// knownKeyIndex returns the known keys by name.
func knownKeyIndex() map[string]KeyInfo {
	m := make(map[string]KeyInfo, 32)
	for _, k := range KnownKeys() {
		m[k.Key] = k
	}
	return m
}

// IsKnownKey reports whether key is one the SDK understands, including the
// indexed form key[N] of a list key.
func IsKnownKey(key string) bool {
	base, _, indexed := splitIndex(key)
	info, ok := knownKeyIndex()[base]
	return ok && (!indexed || info.field.isList)
}

// notOneOf returns the problem of a value outside choices: "<what>"v" is not a,
// b or c" and its fix, or two empty strings when v is one of them.
func notOneOf(what, v string, choices ...string) (msg, fix string) {
	for _, c := range choices {
		if v == c {
			return "", ""
		}
	}
	words := choices[0]
	if n := len(choices); n > 1 {
		words = strings.Join(choices[:n-1], ", ") + " or " + choices[n-1]
	}
	return fmt.Sprintf("%s%q is not %s", what, v, words), "use " + words
}
