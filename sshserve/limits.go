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

// admitAccepted applies the limits that need no client address (open connections
// and unauthenticated ones) to a connection just accepted, and counts it as a
// startup. It returns the limit hit, or "".
func (s *Server) admitAccepted() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := orDefault(s.MaxConns, DefaultMaxConns); m > 0 && len(s.conns) >= m {
		return RejectMaxConns
	}
	if m := orDefault(s.MaxStartups, DefaultMaxStartups); m > 0 && s.startups >= m {
		return RejectMaxStartups
	}
	s.startups++
	return ""
}

// admitIP applies the per-address limits once the client address is known (after
// any PROXY header) and counts the connection against it.
func (s *Server) admitIP(ip netip.Addr) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := orDefault(s.MaxConnsPerIP, DefaultMaxConnsPerIP); m > 0 && s.connsPerIP[ip] >= m {
		return RejectMaxConnsPerIP
	}
	if m := orDefault(s.MaxStartupsPerIP, DefaultMaxStartupsPerIP); m > 0 && s.startupsPerIP[ip] >= m {
		return RejectStartupsPerIP
	}
	if s.connsPerIP == nil {
		s.connsPerIP = map[netip.Addr]int{}
		s.startupsPerIP = map[netip.Addr]int{}
	}
	s.connsPerIP[ip]++
	s.startupsPerIP[ip]++
	return ""
}

// endStartup stops counting a connection as unauthenticated (it authenticated or
// is closing); ip is valid when admitIP counted it.
func (s *Server) endStartup(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startups--
	if ip.IsValid() {
		if s.startupsPerIP[ip]--; s.startupsPerIP[ip] <= 0 {
			delete(s.startupsPerIP, ip)
		}
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
