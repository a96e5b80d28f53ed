package sshserve

import (
	"net/netip"
	"time"
)

// Defaults of the limits and timeouts; see the Server fields of the same names.
const (
	DefaultLoginGraceTime     = 30 * time.Second
	DefaultMaxAuthTries       = 6
	DefaultMaxStartups        = 100
	DefaultMaxStartupsPerIP   = 50
	DefaultMaxConns           = 4096
	DefaultMaxConnsPerIP      = 256
	DefaultMaxSessions        = 10
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultKeepAliveInterval  = 15 * time.Second
	DefaultKeepAliveCountMax  = 3
	DefaultProxyHeaderTimeout = 5 * time.Second
)

// orDefault returns def for zero, 0 for negative (meaning no limit), else v.
func orDefault[T int | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

func (s *Server) minRSABits() int {
	if s.MinRSABits > 0 {
		return s.MinRSABits
	}
	return DefaultMinRSABits
}

// admitAccepted applies the limit that needs no client address, on open
// connections, to a connection just accepted. It returns the limit hit, or "".
func (s *Server) admitAccepted() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := orDefault(s.MaxConns, DefaultMaxConns); m > 0 && len(s.conns) >= m {
		return RejectMaxConns
	}
	return ""
}

// admitIP applies the per-address limits and MaxStartups once the client address
// is known (after any PROXY header), and counts the connection as open from that
// address and as unauthenticated. The per-address limits are checked first, so
// that a flood from one address that they refuse does not use up MaxStartups for
// everyone else.
func (s *Server) admitIP(ip netip.Addr) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := orDefault(s.MaxConnsPerIP, DefaultMaxConnsPerIP); m > 0 && s.connsPerIP[ip] >= m {
		return RejectMaxConnsPerIP
	}
	if m := orDefault(s.MaxStartupsPerIP, DefaultMaxStartupsPerIP); m > 0 && s.startupsPerIP[ip] >= m {
		return RejectStartupsPerIP
	}
	if m := orDefault(s.MaxStartups, DefaultMaxStartups); m > 0 && s.startups >= m {
		return RejectMaxStartups
	}
	if s.connsPerIP == nil {
		s.connsPerIP = map[netip.Addr]int{}
		s.startupsPerIP = map[netip.Addr]int{}
	}
	s.connsPerIP[ip]++
	s.startupsPerIP[ip]++
	s.startups++
	return ""
}

// endStartup stops counting a connection admitted by admitIP as unauthenticated
// (it authenticated or is closing).
func (s *Server) endStartup(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startups--
	if s.startupsPerIP[ip]--; s.startupsPerIP[ip] <= 0 {
		delete(s.startupsPerIP, ip)
	}
}

// releaseIP stops counting a closed connection against its address.
func (s *Server) releaseIP(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.connsPerIP[ip]--; s.connsPerIP[ip] <= 0 {
		delete(s.connsPerIP, ip)
	}
}
