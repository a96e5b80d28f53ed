package props

// Keys of bitbucket.properties that the SDK understands.
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
	KeyMeshSidecarDefaultPort    = "plugin.bitbucket-git.mesh.sidecar.default-port"
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
)

// keyKind is how a key's value is converted.
type keyKind int

const (
	kindString keyKind = iota
	kindPort
	kindBool
	kindDuration
	kindList
	kindCIDRList
	kindURL
	kindEnum
)

// KeyInfo describes one key the SDK understands.
type KeyInfo struct {
	Key     string
	Default string // Bitbucket's default; empty when there is none
	Doc     string
	kind    keyKind
	choices []string // for enumerations
}

// KnownKeys returns every key the SDK understands, in a stable order.
func KnownKeys() []KeyInfo {
	return []KeyInfo{
		{Key: KeyServerPort, Default: "7990", kind: kindPort, Doc: "HTTP port the server listens on"},
		{Key: KeyServerAddress, kind: kindString, Doc: "address the HTTP server binds; empty means all"},
		{Key: KeyServerProxyName, kind: kindString, Doc: "host name users reach the server by through a reverse proxy"},
		{Key: KeyServerProxyPort, kind: kindPort, Doc: "port users reach the server by through a reverse proxy"},
		{Key: KeyServerScheme, Default: "http", kind: kindEnum, choices: []string{"http", "https"}, Doc: "scheme users reach the server by"},
		{Key: KeyServerSecure, Default: "false", kind: kindBool, Doc: "whether requests count as secure (behind a TLS-terminating proxy)"},
		{Key: KeyServerContextPath, kind: kindString, Doc: "path prefix of the web application, such as /bitbucket"},
		{Key: KeyServerSSLEnabled, Default: "false", kind: kindBool, Doc: "serve HTTPS directly"},
		{Key: KeyServerSSLCertificate, kind: kindString, Doc: "PEM certificate chain for HTTPS"},
		{Key: KeyServerSSLCertificateKey, kind: kindString, Doc: "PEM private key for HTTPS"},
		{Key: KeySSHPort, Default: "7999", kind: kindPort, Doc: "SSH port for Git"},
		{Key: KeySSHBaseURL, kind: kindURL, Doc: "SSH base URL shown to users, such as ssh://git@host:7999"},
		{Key: KeySSHDisabledCiphers, kind: kindList, Doc: "SSH ciphers to refuse"},
		{Key: KeySSHDisabledKeyExchanges, kind: kindList, Doc: "SSH key exchanges to refuse"},
		{Key: KeySSHDisabledMACs, kind: kindList, Doc: "SSH MACs to refuse"},
		{Key: KeySSHProxyProtocol, Default: "off", kind: kindEnum, choices: []string{"off", "optional", "required"}, Doc: "PROXY protocol policy of the SSH port (gitfleet)"},
		{Key: KeySSHProxyProtocolTrusted, kind: kindCIDRList, Doc: "networks whose PROXY headers are believed (gitfleet)"},
		{Key: KeyMeshSidecarDefaultPort, Default: "7777", kind: kindPort, Doc: "loopback port the storage sidecar tries first"},
		{Key: KeyApplicationMode, Default: "default", kind: kindEnum, choices: []string{"default", "mirror"}, Doc: "default for a primary, mirror for a smart mirror"},
		{Key: KeySetupDisplayName, kind: kindString, Doc: "instance name, applied on first start"},
		{Key: KeySetupBaseURL, kind: kindURL, Doc: "public base URL, applied on first start"},
		{Key: KeySetupSysadminUsername, kind: kindString, Doc: "first administrator's user name"},
		{Key: KeySetupSysadminPassword, kind: kindString, Doc: "first administrator's password"},
		{Key: KeySetupSysadminDisplayName, kind: kindString, Doc: "first administrator's display name"},
		{Key: KeySetupSysadminEmailAddress, kind: kindString, Doc: "first administrator's e-mail address"},
		{Key: KeyMirroringUpstreamURL, kind: kindURL, Doc: "the primary server's https:// URL (mirror mode)"},
		{Key: KeyMirroringUpstreamType, Default: "server", kind: kindEnum, choices: []string{"server"}, Doc: "kind of upstream (mirror mode)"},
		{Key: KeyMirroringSyncInterval, Default: "3m", kind: kindDuration, Doc: "how often a mirror compares all repositories with the upstream"},
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
	return ok && (!indexed || info.kind == kindList || info.kind == kindCIDRList)
}
