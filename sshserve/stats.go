package sshserve

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitfleet/gitfleet"
)

// Reasons a connection, a session or a request is rejected, as counted in
// Stats.Rejected and named in logs.
const (
	RejectMaxConns       = "max-conns"           // Server.MaxConns reached
	RejectMaxConnsPerIP  = "max-conns-per-ip"    // Server.MaxConnsPerIP reached
	RejectMaxStartups    = "max-startups"        // Server.MaxStartups reached
	RejectStartupsPerIP  = "max-startups-per-ip" // Server.MaxStartupsPerIP reached
	RejectStartupEvicted = "startup-evicted"     // closed unauthenticated to admit a client from an address holding fewer
	RejectProxyHeader    = "proxy-header"        // missing or malformed PROXY header
	RejectProxyUntrusted = "proxy-untrusted"     // PROXY required, peer not trusted
	RejectHandshake      = "handshake"           // SSH handshake or authentication failed
	RejectLoginGrace     = "login-grace"         // Server.LoginGraceTime passed
	RejectKeyPolicy      = "key-policy"          // key type or size refused, or a CA key used as a user key
	RejectCertificate    = "certificate"         // certificate refused: untrusted CA, validity, options, ...
	RejectRevoked        = "revoked"             // key, certificate or CA listed in Server.Revoked
	RejectMaxSessions    = "max-sessions"        // Server.MaxSessions reached on a connection
	RejectChannelType    = "channel-type"        // a channel other than "session"
	RejectRequest        = "request"             // pty, forwarding, env, subsystem, ...
	RejectIdle           = "idle-timeout"        // Server.IdleTimeout passed without traffic
	RejectKeepAlive      = "keepalive"           // the client stopped answering keepalives
	RejectSessionTime    = "max-session-time"    // Server.MaxSessionTime passed
	RejectShutdown       = "shutdown"            // the server is shutting down
)

// Stats is a snapshot of a server's counters.
type Stats struct {
	OpenConns      int64                       // connections open now
	Authenticating int64                       // of which not yet authenticated (counted by MaxStartups)
	TotalConns     uint64                      // connections accepted since start
	AuthFailures   uint64                      // failed authentication attempts (wrong key, refused key)
	Rejected       map[string]uint64           // rejections by reason (the Reject* constants)
	Sessions       map[gitfleet.Service]uint64 // commands run, by service (or CommandWhoami)
	OpenSessions   int64                       // sessions running now
	BytesIn        uint64                      // session bytes received from clients
	BytesOut       uint64                      // session bytes sent to clients (stdout and stderr)
	Ciphers        map[string]uint64           // authenticated connections by the cipher negotiated (client to server)
	Greetings      uint64                      // shell requests answered with the greeting (ssh -T)
}

// SessionInfo describes a finished session to Server.SessionHook.
type SessionInfo struct {
	Conn       ConnInfo
	Principal  Principal
	Service    gitfleet.Service  // the Command's Service; empty when the command did not parse
	Repo       gitfleet.RepoName // the Command's Repo; zero for whoami or a command that did not parse
	BytesIn    int64             // from the client
	BytesOut   int64             // to the client, stdout and stderr
	Start      time.Time
	Duration   time.Duration
	ExitStatus int
	Err        error // why the session failed, if it did
}

type stats struct {
	openConns    atomic.Int64
	totalConns   atomic.Uint64
	authFailures atomic.Uint64
	openSessions atomic.Int64
	bytesIn      atomic.Uint64
	bytesOut     atomic.Uint64
	greetings    atomic.Uint64
	mu           sync.Mutex
	rejected     map[string]uint64
	sessions     map[gitfleet.Service]uint64
	ciphers      map[string]uint64
}

func (s *stats) cipher(name string) {
	s.mu.Lock()
	if s.ciphers == nil {
		s.ciphers = map[string]uint64{}
	}
	s.ciphers[name]++
	s.mu.Unlock()
}

func (s *stats) reject(reason string) {
	s.mu.Lock()
	if s.rejected == nil {
		s.rejected = map[string]uint64{}
	}
	s.rejected[reason]++
	s.mu.Unlock()
}

func (s *stats) session(service gitfleet.Service) {
	s.mu.Lock()
	if s.sessions == nil {
		s.sessions = map[gitfleet.Service]uint64{}
	}
	s.sessions[service]++
	s.mu.Unlock()
}

func (s *stats) snapshot() Stats {
	st := Stats{
		OpenConns:    s.openConns.Load(),
		TotalConns:   s.totalConns.Load(),
		AuthFailures: s.authFailures.Load(),
		OpenSessions: s.openSessions.Load(),
		BytesIn:      s.bytesIn.Load(),
		BytesOut:     s.bytesOut.Load(),
		Greetings:    s.greetings.Load(),
		Rejected:     map[string]uint64{},
		Sessions:     map[gitfleet.Service]uint64{},
		Ciphers:      map[string]uint64{},
	}
	s.mu.Lock()
	for k, v := range s.rejected {
		st.Rejected[k] = v
	}
	for k, v := range s.sessions {
		st.Sessions[k] = v
	}
	for k, v := range s.ciphers {
		st.Ciphers[k] = v
	}
	s.mu.Unlock()
	return st
}
