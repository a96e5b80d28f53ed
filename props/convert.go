package props

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	mprops "github.com/magiconair/properties"
)

// rawConfig receives the resolved values of the known keys through
// magiconair's Decode; the typed conversion follows.
type rawConfig struct {
	ServerPort          string `properties:"server.port"`
	ServerAddress       string `properties:"server.address"`
	ServerProxyName     string `properties:"server.proxy-name"`
	ServerProxyPort     string `properties:"server.proxy-port"`
	ServerScheme        string `properties:"server.scheme"`
	ServerSecure        string `properties:"server.secure"`
	ServerContextPath   string `properties:"server.context-path"`
	SSLEnabled          string `properties:"server.ssl.enabled"`
	SSLCertificate      string `properties:"server.ssl.certificate"`
	SSLCertificateKey   string `properties:"server.ssl.certificate-private-key"`
	SSHPort             string `properties:"plugin.ssh.port"`
	SSHBaseURL          string `properties:"plugin.ssh.baseurl"`
	SSHCiphers          string `properties:"plugin.ssh.disabled.ciphers"`
	SSHKeyExchanges     string `properties:"plugin.ssh.disabled.key.exchanges"`
	SSHMACs             string `properties:"plugin.ssh.disabled.macs"`
	SSHProxyProtocol    string `properties:"plugin.ssh.proxy-protocol"`
	SSHProxyTrusted     string `properties:"plugin.ssh.proxy-protocol.trusted"`
	MeshSidecarPort     string `properties:"plugin.bitbucket-git.mesh.sidecar.default-port"`
	ApplicationMode     string `properties:"application.mode"`
	SetupDisplayName    string `properties:"setup.displayName"`
	SetupBaseURL        string `properties:"setup.baseUrl"`
	SysadminUsername    string `properties:"setup.sysadmin.username"`
	SysadminPassword    string `properties:"setup.sysadmin.password"`
	SysadminDisplayName string `properties:"setup.sysadmin.displayName"`
	SysadminEmail       string `properties:"setup.sysadmin.emailAddress"`
	MirrorUpstreamURL   string `properties:"plugin.mirroring.upstream.url"`
	MirrorUpstreamType  string `properties:"plugin.mirroring.upstream.type"`
	MirrorSyncInterval  string `properties:"plugin.mirroring.synchronization.interval"`
}

// Config converts the known keys into a typed configuration with Bitbucket's
// defaults, resolving placeholders first. Every value that cannot be resolved
// or converted is reported, as Problems naming key, source and fix; the
// returned Config is complete even then, with defaults in place of the bad
// values. Call Config.Validate for the checks between keys.
func (p *Properties) Config() (*Config, error) {
	known := knownKeyIndex()
	c := &Config{sources: map[string]Source{}}
	var problems Problems
	res := p.resolver()
	resolved := mprops.NewProperties()
	resolved.DisableExpansion = true
	indexed := map[string][]indexedValue{}
	for _, k := range p.sortedKeys() {
		e := p.entries[k]
		base, n, isIndexed := splitIndex(k)
		info, ok := known[base]
		if !ok || isIndexed && info.kind != kindList && info.kind != kindCIDRList {
			c.unknown = append(c.unknown, e)
			continue
		}
		v, err := res.resolve(e)
		if err != nil {
			problems = append(problems, placeholderProblem(err, e))
			continue
		}
		if isIndexed {
			indexed[base] = append(indexed[base], indexedValue{n, v, e.Source})
			continue
		}
		c.sources[k] = e.Source
		resolved.Set(k, v)
	}
	for base, vs := range indexed {
		// As in Spring Boot, a list comes from the most important source that
		// holds any of its elements (the environment, then the file); within a
		// source, indexed entries (key[0], key[1], ...) replace the comma form.
		fromEnv := slices.DeleteFunc(slices.Clone(vs), func(v indexedValue) bool { return v.source.Env == "" })
		switch {
		case len(fromEnv) > 0:
			vs = fromEnv
		case c.sources[base].Env != "":
			continue
		}
		slices.SortFunc(vs, func(a, b indexedValue) int { return a.index - b.index })
		items := make([]string, len(vs))
		for i, v := range vs {
			items[i] = strings.ReplaceAll(v.value, ",", "\x00")
		}
		resolved.Set(base, strings.Join(items, ","))
		c.sources[base] = vs[0].source
	}
	schemeSet := false
	for key, info := range known {
		v, ok := resolved.Get(key)
		if ok && strings.TrimSpace(v) != "" {
			schemeSet = schemeSet || key == KeyServerScheme
			continue
		}
		// Unset and empty values take the default; an empty value keeps its
		// source so that problems about it name the line that emptied it.
		resolved.Set(key, info.Default)
	}
	var raw rawConfig
	if err := resolved.Decode(&raw); err != nil {
		return nil, fmt.Errorf("props: decoding the configuration: %w", err)
	}
	cv := converter{c: c, known: known}
	c.Server = ServerConfig{
		Port:        cv.port(KeyServerPort, raw.ServerPort),
		Address:     strings.TrimSpace(raw.ServerAddress),
		ProxyName:   strings.TrimSpace(raw.ServerProxyName),
		ProxyPort:   cv.port(KeyServerProxyPort, raw.ServerProxyPort),
		Scheme:      cv.enum(KeyServerScheme, raw.ServerScheme),
		Secure:      cv.bool(KeyServerSecure, raw.ServerSecure),
		ContextPath: contextPath(raw.ServerContextPath),
		SSL: SSLConfig{
			Enabled:               cv.bool(KeyServerSSLEnabled, raw.SSLEnabled),
			Certificate:           strings.TrimSpace(raw.SSLCertificate),
			CertificatePrivateKey: strings.TrimSpace(raw.SSLCertificateKey),
		},
	}
	if c.Server.SSL.Enabled && !schemeSet {
		c.Server.Scheme = "https"
	}
	c.SSH = SSHConfig{
		Port:                 cv.port(KeySSHPort, raw.SSHPort),
		BaseURL:              cv.url(KeySSHBaseURL, raw.SSHBaseURL),
		DisabledCiphers:      list(raw.SSHCiphers),
		DisabledKeyExchanges: list(raw.SSHKeyExchanges),
		DisabledMACs:         list(raw.SSHMACs),
		ProxyProtocol:        ProxyPolicy(cv.enum(KeySSHProxyProtocol, raw.SSHProxyProtocol)),
		ProxyTrusted:         cv.cidrs(KeySSHProxyProtocolTrusted, raw.SSHProxyTrusted),
	}
	c.Mesh = MeshConfig{SidecarDefaultPort: cv.port(KeyMeshSidecarDefaultPort, raw.MeshSidecarPort)}
	c.Mode = Mode(cv.enum(KeyApplicationMode, raw.ApplicationMode))
	c.Setup = SetupConfig{
		DisplayName: raw.SetupDisplayName,
		BaseURL:     cv.url(KeySetupBaseURL, raw.SetupBaseURL),
		Sysadmin: SysadminConfig{
			Username:     raw.SysadminUsername,
			Password:     raw.SysadminPassword,
			DisplayName:  raw.SysadminDisplayName,
			EmailAddress: strings.TrimSpace(raw.SysadminEmail),
		},
	}
	c.Mirroring = MirroringConfig{
		UpstreamURL:  cv.url(KeyMirroringUpstreamURL, raw.MirrorUpstreamURL),
		UpstreamType: cv.enum(KeyMirroringUpstreamType, raw.MirrorUpstreamType),
		SyncInterval: cv.duration(KeyMirroringSyncInterval, raw.MirrorSyncInterval),
	}
	problems = append(problems, cv.problems...)
	sortProblems(problems)
	if len(problems) > 0 {
		return c, problems
	}
	return c, nil
}

type indexedValue struct {
	index  int
	value  string
	source Source
}

func placeholderProblem(err error, e Entry) Problem {
	var pe *PlaceholderError
	msg := err.Error()
	if errors.As(err, &pe) {
		msg = fmt.Sprintf("cannot resolve placeholder ${%s}: %s", pe.Placeholder, pe.Reason)
	}
	return Problem{Severity: Error, Key: e.Key, Source: e.Source, Message: msg,
		Fix: "define the property or environment variable it names, or give a default as ${name:default}"}
}

// converter turns resolved strings into typed values, recording a problem
// and keeping the default for each value it cannot convert.
type converter struct {
	c        *Config
	known    map[string]KeyInfo
	problems Problems
}

func (cv *converter) fail(key, value, msg, fix string) {
	cv.problems = append(cv.problems, Problem{Severity: Error, Key: key, Source: cv.c.sources[key],
		Message: fmt.Sprintf("%s: %q", msg, value), Fix: fix})
}

// port converts a port; the range is checked by Validate. An unset key is 0
// unless it has a default.
func (cv *converter) port(key, v string) int {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		cv.fail(key, v, "not a port number", "use a whole number from 1 to 65535")
		n, _ = strconv.Atoi(cv.known[key].Default)
	}
	return n
}

// bool accepts true or false in any case, and nothing else.
func (cv *converter) bool(key, v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true":
		return true
	case "false", "":
		return false
	}
	cv.fail(key, v, "not a boolean", "use true or false")
	return cv.known[key].Default == "true"
}

// enum accepts one of the key's choices, in any case.
func (cv *converter) enum(key, v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	info := cv.known[key]
	if slices.Contains(info.choices, v) {
		return v
	}
	cv.fail(key, v, "not one of "+strings.Join(info.choices, ", "), "use one of "+strings.Join(info.choices, " | "))
	return info.Default
}

// duration converts a duration; see ParseDuration.
func (cv *converter) duration(key, v string) time.Duration {
	d, err := ParseDuration(v)
	if err != nil {
		cv.fail(key, v, "not a duration", "use a number with a unit such as 180s, 3m or 1h (a bare number is seconds)")
		d, _ = ParseDuration(cv.known[key].Default)
	}
	return d
}

// url checks that v is an absolute URL with a host.
func (cv *converter) url(key, v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme == "" || u.Host == "" {
		cv.fail(key, v, "not an absolute URL", "write the whole URL, such as https://bitbucket.example.com")
		return ""
	}
	return v
}

// cidrs converts a list of networks; a bare address is a network of one.
func (cv *converter) cidrs(key, v string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list(v) {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		cv.fail(key, s, "not a network in CIDR notation", "use networks such as 10.0.0.0/8 or 192.0.2.7, separated by commas")
	}
	return out
}

// list splits a comma-separated value, trimming items and dropping empty ones.
// Items of indexed keys arrive with their commas as NUL bytes.
func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(strings.ReplaceAll(s, "\x00", ",")); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// contextPath normalises a context path to "" or "/path" without a trailing slash.
func contextPath(v string) string {
	v = strings.Trim(strings.TrimSpace(v), "/")
	if v == "" {
		return ""
	}
	return "/" + v
}

// ParseDuration parses a duration as Spring Boot does for a property whose
// unit is seconds: a bare number is seconds; a number with a unit ns, us, ms,
// s, m, h or d (such as 180s, 3m, 1h); or ISO-8601 such as PT3M. Go durations
// such as 1m30s are accepted too.
func ParseDuration(v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	if s == "" {
		return 0, errors.New("props: empty duration")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if up := strings.ToUpper(s); strings.HasPrefix(up, "P") && up != "P" && !strings.HasSuffix(up, "T") {
		return parseISODuration(up, v)
	}
	if strings.HasSuffix(s, "d") {
		if n, err := strconv.ParseInt(strings.TrimSuffix(s, "d"), 10, 64); err == nil {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("props: invalid duration %q", v)
	}
	return d, nil
}

// parseISODuration parses the days-to-seconds subset of ISO-8601 (PnDTnHnMnS).
func parseISODuration(up, v string) (time.Duration, error) {
	iso := regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)
	if m := iso.FindStringSubmatch(up); m != nil {
		var d time.Duration
		for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
			if m[i+1] != "" {
				n, _ := strconv.ParseInt(m[i+1], 10, 64)
				d += time.Duration(n) * unit
			}
		}
		if m[4] != "" {
			f, _ := strconv.ParseFloat(m[4], 64)
			d += time.Duration(f * float64(time.Second))
		}
		return d, nil
	}
	return 0, fmt.Errorf("props: invalid duration %q", v)
}
