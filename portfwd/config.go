package portfwd

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// Config is a forwarder configuration: the TCP-mode subset of an HAProxy
// configuration. ParseConfig builds one from a file; programs may also build
// one directly. The parser resolves defaults sections into every frontend and
// backend, so a Config holds no inheritance of its own.
type Config struct {
	// Global holds the settings of the global section.
	Global Global
	// Frontends accept connections. Order is kept for Stats.
	Frontends []*Frontend
	// Backends hold the servers that frontends forward to.
	Backends []*Backend
	// Warnings lists what the parser accepted but ignores (log, daemon, ...).
	// They never stop a configuration from loading.
	Warnings []Diagnostic
}

// Global holds process-wide settings.
type Global struct {
	// MaxConn bounds the connections handled at once over all frontends.
	// When reached, frontends stop accepting until a connection ends; the
	// kernel keeps new clients in the listen backlog. Zero means no bound.
	MaxConn int
}

// Timeouts are HAProxy's timeouts. Zero means none (wait forever), as in
// HAProxy. Client-side timeouts are read from the frontend, server-side ones
// from the backend.
type Timeouts struct {
	// Connect bounds one connect attempt to a server.
	Connect time.Duration
	// Client is the inactivity timeout on the client side.
	Client time.Duration
	// Server is the inactivity timeout on the server side.
	Server time.Duration
	// Tunnel, when set, replaces Client and Server once both sides are
	// connected, as it does in HAProxy's TCP mode.
	Tunnel time.Duration
	// Queue bounds the time a connection waits for a server slot; zero means
	// Connect is used, as in HAProxy.
	Queue time.Duration
	// ClientFin replaces Client once one direction has been shut down.
	ClientFin time.Duration
	// ServerFin replaces Server once one direction has been shut down.
	ServerFin time.Duration
	// Check bounds a health check; zero means the server's Inter.
	Check time.Duration
}

// Frontend accepts client connections on its binds and forwards them to a
// backend.
type Frontend struct {
	// Name identifies the frontend in Stats and diagnostics.
	Name string
	// Binds are the addresses to listen on.
	Binds []Bind
	// DefaultBackend names the backend to forward to. Empty means the
	// frontend closes every connection it accepts (HAProxy warns about it).
	DefaultBackend string
	// MaxConn bounds the connections of this frontend handled at once; the
	// frontend stops accepting while it is reached. Zero means no bound.
	MaxConn int
	// Timeouts uses Client and ClientFin.
	Timeouts Timeouts
	// Line is where the frontend was declared, for diagnostics (zero if the
	// Config was not parsed).
	Line Position

	backendLine Position // the default_backend line, when parsed
}

// Bind is one listening address of a frontend.
type Bind struct {
	// Addr is "host:port"; an empty host or "*" means all addresses.
	Addr string
	// AcceptProxy requires a PROXY protocol header (v1 or v2) at the start
	// of each connection and takes the client address from it.
	AcceptProxy bool
}

// Balance is a load-balancing algorithm.
type Balance string

// The balancing algorithms. The zero value means RoundRobin.
const (
	// RoundRobin cycles through servers in proportion to their weights.
	RoundRobin Balance = "roundrobin"
	// LeastConn picks the server with the fewest connections per weight.
	LeastConn Balance = "leastconn"
	// Source hashes the client IP so a client keeps the same server while
	// the set of servers that are up stays the same.
	Source Balance = "source"
	// First picks the first server (in declaration order) with a free slot.
	First Balance = "first"
)

// Backend is a group of servers.
type Backend struct {
	// Name identifies the backend for DefaultBackend and in Stats.
	Name string
	// Balance is the algorithm; empty means RoundRobin.
	Balance Balance
	// Retries is the number of extra connect attempts after a failed one,
	// each to another server when there is one. Zero means HAProxy's default
	// of 3; negative means no retry.
	Retries int
	// Timeouts uses Connect, Server, Tunnel, Queue, ServerFin and Check.
	Timeouts Timeouts
	// Servers are the servers, in declaration order.
	Servers []*Server
	// HTTPCheck, when not nil, makes the health checks of the servers with
	// Check HTTP requests ("option httpchk"); nil means TCP connects.
	HTTPCheck *HTTPCheck
	// Line is where the backend was declared.
	Line Position
}

// ProxyVersion selects the PROXY protocol header sent to a server.
type ProxyVersion int

// PROXY protocol versions.
const (
	// NoProxy sends no header.
	NoProxy ProxyVersion = 0
	// ProxyV1 sends the text header ("send-proxy").
	ProxyV1 ProxyVersion = 1
	// ProxyV2 sends the binary header ("send-proxy-v2").
	ProxyV2 ProxyVersion = 2
)

// Default health-check settings, HAProxy's.
const (
	DefaultInter   = 2 * time.Second
	DefaultRise    = 2
	DefaultFall    = 3
	DefaultRetries = 3
)

// Server is one destination of a backend.
type Server struct {
	// Name identifies the server within its backend.
	Name string
	// Addr is "host:port".
	Addr string
	// Check turns on health checks every Inter: a TCP connect, or an HTTP
	// request when the backend has an HTTPCheck.
	Check bool
	// CheckPort is the port health checks connect to ("port N"); zero means
	// the port of Addr. With CheckPort set, no PROXY header is sent to the
	// check, as in HAProxy.
	CheckPort int
	// CheckSSL makes health checks TLS connections ("check-ssl"), for an
	// HTTPS health endpoint. The certificate is verified against CAFile
	// ("ca-file"), and its name against CheckSNI when set ("check-sni", also
	// the name sent), unless VerifyNone ("verify none"). Traffic is not
	// affected: portfwd forwards TCP as it comes.
	CheckSSL bool
	// VerifyNone accepts any certificate in CheckSSL checks ("verify none").
	VerifyNone bool
	// CAFile is the PEM file of the authorities CheckSSL checks trust.
	CAFile string
	// CheckSNI is the server name CheckSSL checks send and verify.
	CheckSNI string
	// Inter is the time between checks; zero means DefaultInter.
	Inter time.Duration
	// Rise is the number of passing checks that bring a down server up;
	// zero means DefaultRise.
	Rise int
	// Fall is the number of failing checks that take an up server down;
	// zero means DefaultFall.
	Fall int
	// SendProxy is the PROXY header sent at the start of each connection.
	// Health checks send a LOCAL header of the same version.
	SendProxy ProxyVersion
	// MaxConn bounds the connections to this server; further connections
	// wait in the backend queue, or, with balance source, in this server's
	// own queue. Zero means no bound.
	MaxConn int
	// MaxQueue bounds the connections waiting for this server in its own
	// queue; the backend queue holds at most the sum of its servers'
	// MaxQueue. Zero (on any server, for the backend queue) means unbounded.
	MaxQueue int
	// Backup servers are used only when no other server is up; the first
	// backup that is up takes the traffic, as in HAProxy.
	Backup bool
	// Weight is the server's share in RoundRobin, LeastConn and Source;
	// zero means 1.
	Weight int
	// Line is where the server was declared.
	Line Position
}

// Position is a place in a configuration file.
type Position struct {
	File string
	Line int
}

// String returns "file:line", or "" for the zero Position.
func (p Position) String() string {
	if p.Line == 0 {
		return p.File
	}
	return p.File + ":" + strconv.Itoa(p.Line)
}

func (s *Server) inter() time.Duration { return orDuration(s.Inter, DefaultInter) }
func (s *Server) rise() int            { return orInt(s.Rise, DefaultRise) }
func (s *Server) fall() int            { return orInt(s.Fall, DefaultFall) }
func (s *Server) weight() int          { return orInt(s.Weight, 1) }

func (b *Backend) retries() int {
	switch {
	case b.Retries < 0:
		return 0
	case b.Retries == 0:
		return DefaultRetries
	}
	return b.Retries
}

func (b *Backend) queueTimeout() time.Duration {
	return orDuration(b.Timeouts.Queue, b.Timeouts.Connect)
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func orInt(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Listeners returns the number of binds over all frontends. A Config without
// any is valid but serves nothing (haproxy -c exit code 2).
func (c *Config) Listeners() int {
	n := 0
	for _, f := range c.Frontends {
		n += len(f.Binds)
	}
	return n
}

// BindAddrs returns the distinct bind addresses of all frontends, in
// configuration order: the order in which Serve takes its listeners.
func (c *Config) BindAddrs() []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range c.Frontends {
		for _, bd := range f.Binds {
			if !seen[bd.Addr] {
				seen[bd.Addr] = true
				out = append(out, bd.Addr)
			}
		}
	}
	return out
}

// Backend returns the backend called name, or nil.
func (c *Config) Backend(name string) *Backend {
	for _, b := range c.Backends {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// Validate checks what a Config built in Go may get wrong: names, addresses
// and references. ParseConfig runs it on what it builds.
func (c *Config) Validate() error {
	var errs []Diagnostic
	bad := func(p Position, format string, args ...any) {
		errs = append(errs, Diagnostic{Pos: p, Msg: fmt.Sprintf(format, args...)})
	}
	names := map[string]bool{}
	for _, b := range c.Backends {
		if b.Name == "" {
			bad(b.Line, "backend without a name")
		}
		if names[b.Name] {
			bad(b.Line, "backend %q is declared twice", b.Name)
		}
		names[b.Name] = true
		switch b.Balance {
		case "", RoundRobin, LeastConn, Source, First:
		default:
			bad(b.Line, "backend %q: unknown balance %q", b.Name, b.Balance)
		}
		if b.HTTPCheck != nil {
			if msg := b.HTTPCheck.validate(); msg != "" {
				bad(b.Line, "backend %q: %s", b.Name, msg)
			}
		}
		seen := map[string]bool{}
		for _, s := range b.Servers {
			if seen[s.Name] {
				bad(s.Line, "backend %q: server %q is declared twice", b.Name, s.Name)
			}
			seen[s.Name] = true
			if _, _, err := net.SplitHostPort(s.Addr); err != nil {
				bad(s.Line, "server %s/%s: invalid address %q", b.Name, s.Name, s.Addr)
			}
			if s.CheckPort < 0 || s.CheckPort > 65535 {
				bad(s.Line, "server %s/%s: invalid check port %d", b.Name, s.Name, s.CheckPort)
			}
			if _, err := checkTLSConfig(s); err != nil {
				bad(s.Line, "server %s/%s: %v", b.Name, s.Name, err)
			}
			if s.SendProxy < NoProxy || s.SendProxy > ProxyV2 {
				bad(s.Line, "server %s/%s: unknown PROXY version %d", b.Name, s.Name, s.SendProxy)
			}
		}
	}
	fnames := map[string]bool{}
	for _, f := range c.Frontends {
		if fnames[f.Name] {
			bad(f.Line, "frontend %q is declared twice", f.Name)
		}
		fnames[f.Name] = true
		for _, bd := range f.Binds {
			if _, _, err := net.SplitHostPort(bd.Addr); err != nil {
				bad(f.Line, "frontend %q: invalid bind address %q", f.Name, bd.Addr)
			}
		}
		if f.DefaultBackend != "" && !names[f.DefaultBackend] {
			p := f.Line
			if f.backendLine.Line != 0 {
				p = f.backendLine
			}
			bad(p, "frontend %q: unable to find required default_backend %q", f.Name, f.DefaultBackend)
		}
	}
	if len(errs) > 0 {
		return &ConfigError{Diagnostics: errs}
	}
	return nil
}
