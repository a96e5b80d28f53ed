package sshserve

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/pires/go-proxyproto"
)

// ProxyPolicy says whether connections start with a PROXY protocol header (v1 or
// v2), as a load balancer such as HAProxy with send-proxy-v2 sends it.
type ProxyPolicy int

// The PROXY protocol policies.
const (
	// ProxyOff expects no header: a connection is SSH from its first byte.
	ProxyOff ProxyPolicy = iota
	// ProxyOptional accepts a header from a trusted peer (Server.ProxyTrusted) and
	// a connection without one from any peer; a header from an untrusted peer
	// closes the connection.
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

// ParseProxyPolicy parses "off", "optional" or "required" (the values of the
// plugin.ssh.proxy-protocol property); the empty string is "off".
func ParseProxyPolicy(s string) (ProxyPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "off":
		return ProxyOff, nil
	case "optional":
		return ProxyOptional, nil
	case "required":
		return ProxyRequired, nil
	}
	return ProxyOff, fmt.Errorf("sshserve: PROXY protocol policy %q: want off, optional or required", s)
}

// ParseCIDRs parses a comma- or space-separated list of CIDR blocks or single
// addresses (the plugin.ssh.proxy-protocol.trusted property).
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("sshserve: trusted proxy %q: %w", f, err)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("sshserve: trusted proxy %q: %w", f, err)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func (s *Server) trustedProxy(addr net.Addr) bool {
	ip, ok := addrIP(addr)
	if !ok {
		return false
	}
	for _, p := range s.ProxyTrusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// acceptProxyHeader reads the PROXY header that the policy calls for, in the
// connection's own goroutine and before the SSH banner is sent, and returns the
// connection to speak SSH on. c.remote and c.local become the header's addresses.
// On error the connection is refused (logged and counted) and the caller closes it.
func (c *conn) acceptProxyHeader() (net.Conn, error) {
	s := c.srv
	if s.ProxyProtocol == ProxyOff {
		return c.nc, nil
	}
	peer := c.nc.RemoteAddr()
	trusted := s.trustedProxy(peer)
	var policy proxyproto.Policy
	switch {
	case s.ProxyProtocol == ProxyRequired && !trusted:
		s.stats.reject(RejectProxyUntrusted)
		c.log.Info("connection refused: PROXY header required from a trusted peer", "conn", c.id, "peer", addrString(peer))
		return nil, fmt.Errorf("sshserve: untrusted peer %s", peer)
	case s.ProxyProtocol == ProxyRequired:
		policy = proxyproto.REQUIRE
	case trusted:
		policy = proxyproto.USE
	default:
		policy = proxyproto.REJECT
	}
	timeout := orDefault(s.ProxyHeaderTimeout, DefaultProxyHeaderTimeout)
	pc := proxyproto.NewConn(c.nc, proxyproto.WithPolicy(policy), proxyproto.SetReadHeaderTimeout(timeout))
	// A zero-length read runs header processing and returns its error without
	// consuming any of the SSH stream.
	if _, err := pc.Read(nil); err != nil {
		s.stats.reject(RejectProxyHeader)
		c.log.Info("connection refused: bad PROXY header", "conn", c.id, "peer", addrString(peer), "policy", s.ProxyProtocol.String(), "err", err)
		return nil, err
	}
	if h := pc.ProxyHeader(); h != nil {
		c.remote, c.local = pc.RemoteAddr(), pc.LocalAddr()
		c.log.Debug("PROXY header accepted", "conn", c.id, "peer", addrString(peer), "client", addrString(c.remote))
	}
	return pc, nil
}
