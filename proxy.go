package gitfleet

import (
	"fmt"
	"strings"
)

// ProxyPolicy says whether connections start with a PROXY protocol header (v1 or
// v2), as a load balancer such as HAProxy with send-proxy-v2 sends it. It is the
// value of the plugin.ssh.proxy-protocol property.
type ProxyPolicy int

// The PROXY protocol policies.
const (
	// ProxyOff expects no header: a connection is SSH from its first byte.
	ProxyOff ProxyPolicy = iota
	// ProxyOptional accepts a header from a trusted peer and a connection without
	// one from any peer; a header from an untrusted peer closes the connection.
	ProxyOptional
	// ProxyRequired requires a header from a trusted peer: a connection from an
	// untrusted peer, or without a valid header, is closed.
	ProxyRequired
)

func (p ProxyPolicy) String() string {
	switch p {
	case ProxyOff:
		return "off"
	case ProxyOptional:
		return "optional"
	case ProxyRequired:
		return "required"
	}
	return fmt.Sprintf("ProxyPolicy(%d)", int(p))
}

// ParseProxyPolicy parses "off", "optional" or "required" (case and surrounding
// blanks ignored); the empty string is "off".
func ParseProxyPolicy(s string) (ProxyPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "off":
		return ProxyOff, nil
	case "optional":
		return ProxyOptional, nil
	case "required":
		return ProxyRequired, nil
	}
	return ProxyOff, fmt.Errorf("gitfleet: PROXY protocol policy %q: want off, optional or required", printable(s))
}

// MarshalText returns the policy's name.
func (p ProxyPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses a policy's name with ParseProxyPolicy.
func (p *ProxyPolicy) UnmarshalText(b []byte) error {
	v, err := ParseProxyPolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
