package props

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/gitfleet/gitfleet"
)

// Validate checks the configuration as a whole and returns every problem at
// once, errors and warnings (see Problems.Errors and Problems.Warnings), each
// with the key, where its value came from and the fix. Values that could not
// be converted were already reported by Properties.Config; Check runs both.
//
// Each key's own rule comes from KnownKeys; the rules between keys follow.
func (c *Config) Validate() Problems {
	var ps Problems
	add := func(sev Severity, key, msg, fix string) {
		ps = append(ps, Problem{Severity: sev, Key: key, Source: c.Source(key), Message: msg, Fix: fix})
	}
	keys := KnownKeys()
	for i := range keys {
		k := &keys[i]
		if k.field.check != nil {
			if msg, fix := k.field.check(c, k); msg != "" {
				add(Error, k.Key, msg, fix)
			}
		}
		if k.check != nil {
			if msg, fix := k.check(c); msg != "" {
				add(Error, k.Key, msg, fix)
			}
		}
	}
	if c.Server.Port == c.SSH.Port && c.Server.Port != 0 {
		add(Error, KeySSHPort, fmt.Sprintf("SSH port %d is also the HTTP port (%s)", c.SSH.Port, KeyServerPort),
			"give "+KeySSHPort+" and "+KeyServerPort+" different ports")
	}
	if c.Server.SSL.Enabled {
		if c.Server.SSL.Certificate == "" {
			add(Error, KeyServerSSLCertificate, "server.ssl.enabled=true but no certificate is set",
				"set "+KeyServerSSLCertificate+" to a PEM certificate file, or set server.ssl.enabled=false")
		}
		if c.Server.SSL.CertificatePrivateKey == "" {
			add(Error, KeyServerSSLCertificateKey, "server.ssl.enabled=true but no private key is set",
				"set "+KeyServerSSLCertificateKey+" to a PEM private key file, or set server.ssl.enabled=false")
		}
	}
	if p := c.SSH.ProxyProtocol; (p == gitfleet.ProxyOptional || p == gitfleet.ProxyRequired) && len(c.SSH.ProxyTrusted) == 0 {
		sev, what := Warning, "PROXY headers will be ignored from everyone"
		if p == gitfleet.ProxyRequired {
			sev, what = Error, "every SSH connection would be refused"
		}
		add(sev, KeySSHProxyProtocolTrusted, KeySSHProxyProtocol+"="+p.String()+" but no network is trusted: "+what,
			"list the load balancers' networks in "+KeySSHProxyProtocolTrusted+", such as 10.0.0.0/8")
	}
	if c.Mode == ModeMirror {
		c.validateMirror(add)
	}
	for _, e := range c.unknown {
		p := Problem{Severity: Warning, Key: e.Key, Source: e.Source, Message: "unknown key; it is ignored"}
		if s := SuggestKey(e.Key); s != "" {
			p.Message = "unknown key; did you mean " + s + "?"
			p.Fix = "rename it to " + s
		}
		ps = append(ps, p)
	}
	sortProblems(ps)
	return ps
}

func (c *Config) validateMirror(add func(Severity, string, string, string)) {
	if c.Setup.BaseURL == "" {
		add(Error, KeySetupBaseURL, "a mirror needs its own base URL",
			"set "+KeySetupBaseURL+" to the mirror's https:// URL")
	} else if u, err := url.Parse(c.Setup.BaseURL); err == nil && u.Scheme != "https" {
		add(Error, KeySetupBaseURL, "a mirror must be reached over HTTPS",
			"set "+KeySetupBaseURL+" to an https:// URL")
	}
	switch u := c.Mirroring.UpstreamURL; {
	case u == "":
		add(Error, KeyMirroringUpstreamURL, "a mirror needs the URL of its primary server",
			"set "+KeyMirroringUpstreamURL+" to the primary's https:// URL")
	case !strings.HasPrefix(strings.ToLower(u), "https://"):
		add(Error, KeyMirroringUpstreamURL, "the primary server URL must include the https:// prefix",
			"write "+KeyMirroringUpstreamURL+"=https://"+strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "//"))
	}
	if c.Mirroring.UpstreamType != "server" {
		add(Error, KeyMirroringUpstreamType, fmt.Sprintf("upstream type %q is not server", c.Mirroring.UpstreamType), "use server")
	}
}

// Check converts p into a Config and validates it, returning the Config (with
// defaults for values that could not be converted) and every problem found.
// It is what a -check-config flag prints.
func Check(p *Properties) (*Config, Problems) {
	c, err := p.Config()
	var ps Problems
	if conv, ok := err.(Problems); ok {
		ps = append(ps, conv...)
	} else if err != nil {
		ps = append(ps, Problem{Severity: Error, Message: err.Error()})
	}
	if c != nil {
		ps = append(ps, c.Validate()...)
	}
	sortProblems(ps)
	return c, ps
}

// sortProblems orders problems by severity, then by source (file lines in
// order, then environment variables, then defaults), then by key.
func sortProblems(ps Problems) {
	rank := func(s Source) int {
		switch {
		case s.Env != "":
			return 1
		case s.File != "":
			return 0
		}
		return 2
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(a.Severity, b.Severity),
			cmp.Compare(rank(a.Source), rank(b.Source)),
			cmp.Compare(a.Source.File, b.Source.File),
			cmp.Compare(a.Source.Line, b.Source.Line),
			cmp.Compare(a.Source.Env, b.Source.Env),
			cmp.Compare(a.Key, b.Key),
		)
	})
}
