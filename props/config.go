package props

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
)

// Mode is the value of application.mode.
type Mode string

// The application modes.
const (
	ModeDefault Mode = "default" // a primary server
	ModeMirror  Mode = "mirror"  // a smart mirror
)

// Config is the typed configuration of a node. Every field holds Bitbucket's
// default when its key is not set (or set to an empty value).
type Config struct {
	Server    ServerConfig
	SSH       SSHConfig
	Mesh      MeshConfig
	Mode      Mode // application.mode: default
	Setup     SetupConfig
	Mirroring MirroringConfig

	sources map[string]Source // where each set key's value came from
	unknown []Entry           // keys set that the SDK does not know
}

// ServerConfig holds the server.* keys.
type ServerConfig struct {
	Port        int    // server.port: 7990
	Address     string // server.address: empty for all addresses
	ProxyName   string // server.proxy-name
	ProxyPort   int    // server.proxy-port: 0 when not set
	Scheme      string // server.scheme: http (https when server.ssl.enabled and not set)
	Secure      bool   // server.secure: false
	ContextPath string // server.context-path: empty, else "/path" without a trailing slash
	SSL         SSLConfig
}

// SSLConfig holds the server.ssl.* keys.
type SSLConfig struct {
	Enabled               bool   // server.ssl.enabled: false
	Certificate           string // server.ssl.certificate: PEM file path
	CertificatePrivateKey string // server.ssl.certificate-private-key: PEM file path
}

// SSHConfig holds the plugin.ssh.* keys.
type SSHConfig struct {
	Port                 int                  // plugin.ssh.port: 7999
	BaseURL              string               // plugin.ssh.baseurl: empty to derive it (see Config.SSHBaseURL)
	DisabledCiphers      []string             // plugin.ssh.disabled.ciphers
	DisabledKeyExchanges []string             // plugin.ssh.disabled.key.exchanges
	DisabledMACs         []string             // plugin.ssh.disabled.macs
	ProxyProtocol        gitfleet.ProxyPolicy // plugin.ssh.proxy-protocol: off
	ProxyTrusted         []netip.Prefix       // plugin.ssh.proxy-protocol.trusted
	TrustedUserCAKeys    string               // plugin.ssh.trusted.user.ca.keys: file path; empty trusts no certificate authority
	RevokedKeys          string               // plugin.ssh.revoked.keys: file path; empty revokes nothing
}

// MeshConfig holds the plugin.bitbucket-git.mesh.* keys and gitfleet's own
// storage keys (plugin.gitfleet.lfs.*).
type MeshConfig struct {
	SidecarDefaultPort int           // plugin.bitbucket-git.mesh.sidecar.default-port: 7777
	LFSMaxObjectSize   int64         // plugin.gitfleet.lfs.max-object-size: 5g; -1 means no limit
	LFSGracePeriod     time.Duration // plugin.gitfleet.lfs.grace-period: 24h

	// The pack cache of the store (see mesh's package documentation, "Pack cache").
	PackCacheEnabled bool          // plugin.bitbucket-git.mesh.pack-cache.enabled: true
	PackCacheMaxSize int64         // plugin.bitbucket-git.mesh.pack-cache.max-size: 1g (bytes)
	PackCacheMaxAge  time.Duration // plugin.bitbucket-git.mesh.pack-cache.max-age: 1h
	PackCacheDir     string        // plugin.bitbucket-git.mesh.pack-cache.dir: empty for <repositories>/.mesh/pack-cache
	// PackObjectsPerRepository bounds the pack-objects runs the cache cannot
	// answer in one repository; 0 means the number of CPUs, negative no bound.
	PackObjectsPerRepository int // plugin.bitbucket-git.mesh.pack-objects.max-per-repository: 0
}

// SetupConfig holds the setup.* keys, applied on a node's first start.
type SetupConfig struct {
	DisplayName string // setup.displayName
	BaseURL     string // setup.baseUrl
	Sysadmin    SysadminConfig
}

// SysadminConfig holds the setup.sysadmin.* keys.
type SysadminConfig struct {
	Username     string // setup.sysadmin.username
	Password     string // setup.sysadmin.password
	DisplayName  string // setup.sysadmin.displayName
	EmailAddress string // setup.sysadmin.emailAddress
}

// MirroringConfig holds the plugin.mirroring.* keys.
type MirroringConfig struct {
	UpstreamURL  string        // plugin.mirroring.upstream.url: https:// URL of the primary
	UpstreamType string        // plugin.mirroring.upstream.type: server
	SyncInterval time.Duration // plugin.mirroring.synchronization.interval: 3m
	// FarmJoinToken is plugin.mirroring.farm.join-token: a farm's join token
	// (mirror.JoinToken), with which a new node joins the farm accepted.
	FarmJoinToken string
	// ReadyUpstreamOutage is plugin.mirroring.readiness.upstream-outage (60s),
	// a key of our own: a mirror that has failed to reach the upstream's
	// change feed for longer reports not ready.
	ReadyUpstreamOutage time.Duration
}

// Defaults returns the configuration of a node without a properties file.
func Defaults() *Config {
	c, _ := New(nil, []string{}).Config()
	return c
}

// Source returns where key's value came from; the zero Source for a default.
func (c *Config) Source(key string) Source { return c.sources[key] }

// UnknownKeys returns the set keys that the SDK does not know, sorted.
func (c *Config) UnknownKeys() []Entry { return append([]Entry(nil), c.unknown...) }

// PublicBaseURL returns the URL users reach the server by: setup.baseUrl if set,
// else server.scheme, server.proxy-name (else server.address, else localhost),
// server.proxy-port (else server.port) and server.context-path, leaving out the
// scheme's default port.
func (c *Config) PublicBaseURL() string {
	if c.Setup.BaseURL != "" {
		return strings.TrimSuffix(c.Setup.BaseURL, "/")
	}
	scheme := c.Server.Scheme
	if scheme == "" {
		scheme = "http"
	}
	port := c.Server.Port
	if c.Server.ProxyPort != 0 {
		port = c.Server.ProxyPort
	}
	if scheme == "http" && port == 80 || scheme == "https" && port == 443 {
		port = 0
	}
	return scheme + "://" + hostPort(c.publicHost(), port) + c.Server.ContextPath
}

// publicHost is the host name of the derived public base URL.
func (c *Config) publicHost() string {
	if c.Server.ProxyName != "" {
		return c.Server.ProxyName
	}
	if a := c.Server.Address; a != "" {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.IsUnspecified() {
			return a
		}
	}
	return "localhost"
}

// SSHBaseURL returns the SSH URL users clone by: plugin.ssh.baseurl if set, else
// ssh://git@host:port with the host of the public base URL and plugin.ssh.port,
// leaving out port 22.
func (c *Config) SSHBaseURL() string {
	if c.SSH.BaseURL != "" {
		return strings.TrimSuffix(c.SSH.BaseURL, "/")
	}
	host := c.publicHost()
	if u, err := url.Parse(c.PublicBaseURL()); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	port := c.SSH.Port
	if port == 22 {
		port = 0
	}
	return "ssh://git@" + hostPort(host, port)
}

func hostPort(host string, port int) string {
	if port == 0 {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
