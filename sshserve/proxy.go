package sshserve

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/gitfleet/gitfleet"
	"github.com/pires/go-proxyproto"
)

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
	if s.ProxyProtocol == gitfleet.ProxyOff {
		return c.nc, nil
	}
	peer := c.nc.RemoteAddr()
	trusted := s.trustedProxy(peer)
	var policy proxyproto.Policy
	switch {
	case s.ProxyProtocol == gitfleet.ProxyRequired && !trusted:
		s.stats.reject(RejectProxyUntrusted)
		c.log.Info("connection refused: PROXY header required from a trusted peer", "conn", c.id, "peer", addrString(peer))
		return nil, fmt.Errorf("sshserve: untrusted peer %s", peer)
	case s.ProxyProtocol == gitfleet.ProxyRequired:
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
