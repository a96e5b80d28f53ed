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
	DefaultStartupQueueWait   = 3 * time.Second
	DefaultMaxConns           = 4096
	DefaultMaxConnsPerIP      = 256
	DefaultMaxSessions        = 10
	DefaultIdleTimeout        = 10 * time.Minute
	DefaultKeepAliveInterval  = 15 * time.Second
	DefaultKeepAliveCountMax  = 3
	DefaultProxyHeaderTimeout = 5 * time.Second
	DefaultInputEndWait       = 2 * time.Second
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
//
// When MaxStartups is full, a newcomer is still admitted if some address holds
// more unauthenticated connections than the newcomer's address would after
// admission: the oldest unauthenticated connection of the address that holds the
// most is closed to make room (RejectStartupEvicted). A flood from a few
// addresses therefore cannot keep out a client from any other address, and it
// cannot evict that client either, since it never holds the most. It returns the
// limit hit, or "", and the connection to close, if any (the caller closes it,
// outside the server's lock).
//
// A connection that MaxStartups or MaxStartupsPerIP would refuse first waits up
// to StartupQueueWait for an unauthenticated slot to free (see Server).
func (s *Server) admitIP(c *conn, ip netip.Addr) (string, *conn) {
	wait := orDefault(s.StartupQueueWait, DefaultStartupQueueWait)
	deadline := time.Now().Add(wait)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		reason, victim := s.tryAdmitLocked(c, ip)
		left := time.Until(deadline)
		if reason != RejectStartupsPerIP && reason != RejectMaxStartups || wait <= 0 || left <= 0 {
			return reason, victim
		}
		if s.startupFreed == nil {
			s.startupFreed = make(chan struct{})
		}
		freed := s.startupFreed
		s.mu.Unlock()
		t := time.NewTimer(left)
		select {
		case <-freed:
		case <-t.C:
		case <-c.ctx.Done():
		}
		t.Stop()
		s.mu.Lock()
		if c.ctx.Err() != nil {
			return reason, nil
		}
	}
}

// tryAdmitLocked is one admission attempt of admitIP; s.mu is held.
func (s *Server) tryAdmitLocked(c *conn, ip netip.Addr) (string, *conn) {
	if m := orDefault(s.MaxConnsPerIP, DefaultMaxConnsPerIP); m > 0 && s.connsPerIP[ip] >= m {
		return RejectMaxConnsPerIP, nil
	}
	if m := orDefault(s.MaxStartupsPerIP, DefaultMaxStartupsPerIP); m > 0 && s.startupsPerIP[ip] >= m {
		return RejectStartupsPerIP, nil
	}
	var victim *conn
	if m := orDefault(s.MaxStartups, DefaultMaxStartups); m > 0 && s.startups >= m {
		if victim = s.evictionVictim(ip); victim == nil {
			return RejectMaxStartups, nil
		}
		s.stopStartupLocked(victim)
	}
	if s.connsPerIP == nil {
		s.connsPerIP = map[netip.Addr]int{}
		s.startupsPerIP = map[netip.Addr]int{}
	}
	s.connsPerIP[ip]++
	s.startupsPerIP[ip]++
	s.startups++
	c.startupIP = ip
	c.startupAt = time.Now()
	return "", victim
}

// evictionVictim returns the oldest unauthenticated connection of the address
// that holds the most of them, if that address holds more than ip would after
// one more; else nil. It runs only when MaxStartups is full.
func (s *Server) evictionVictim(ip netip.Addr) *conn {
	var top netip.Addr
	most := 0
	for a, n := range s.startupsPerIP {
		if n > most {
			top, most = a, n
		}
	}
	if most <= s.startupsPerIP[ip]+1 {
		return nil
	}
	var victim *conn
	for c := range s.conns {
		if !c.startupAt.IsZero() && c.startupIP == top && (victim == nil || c.startupAt.Before(victim.startupAt)) {
			victim = c
		}
	}
	return victim
}

// endStartup stops counting a connection admitted by admitIP as unauthenticated
// (it authenticated or is closing). It does nothing for a connection already
// stopped (an evicted one).
func (s *Server) endStartup(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopStartupLocked(c)
}

func (s *Server) stopStartupLocked(c *conn) {
	if c.startupAt.IsZero() {
		return
	}
	c.startupAt = time.Time{}
	if s.startupFreed != nil {
		close(s.startupFreed) // the waiting connections try again
		s.startupFreed = nil
	}
	s.startups--
	if s.startupsPerIP[c.startupIP]--; s.startupsPerIP[c.startupIP] <= 0 {
		delete(s.startupsPerIP, c.startupIP)
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
