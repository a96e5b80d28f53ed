package sshserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

// Server serves Git over SSH. Its exported fields are its configuration: set them
// before calling Serve and do not change them afterwards. The zero value of every
// field but HostKeys, Backend, PublicKeyCallback and Authorizer is a usable
// default; without a PublicKeyCallback no key is accepted and without an
// Authorizer every repository request is refused.
type Server struct {
	// Addr is the TCP address ListenAndServe listens on; empty means ":7999".
	Addr string
	// HostKeys are the server's host keys, one per key type (see
	// LoadOrCreateHostKeys). At least one is required.
	HostKeys []ssh.Signer
	// Backend runs the git services.
	Backend GitBackend
	// PublicKeyCallback maps a client key to a principal; nil refuses every key.
	PublicKeyCallback PublicKeyCallback
	// Authorizer decides read and write access; nil refuses every request.
	Authorizer Authorizer
	// TrustedUserCAKeys are certificate authorities whose OpenSSH user
	// certificates authenticate clients, as OpenSSH's TrustedUserCAKeys (see
	// LoadTrustedUserCAKeys and the package documentation, "Certificates").
	// Each must pass the key policy. nil trusts none: certificates are refused.
	// A trusted authority's key never logs in as a plain key.
	TrustedUserCAKeys []ssh.PublicKey
	// CertificateCallback maps a verified certificate to a principal (see
	// PrincipalsCallback). It is required when TrustedUserCAKeys is set: Serve
	// fails without it.
	CertificateCallback CertificateCallback
	// Revoked lists keys, certificate serials and key IDs that must not
	// authenticate, as plain keys, certificate keys or certificate authorities
	// (see LoadRevocationList); nil revokes nothing.
	Revoked *RevocationList
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// ServerVersion is the SSH identification string; empty means
	// "SSH-2.0-gitfleet".
	ServerVersion string
	// SessionHook, when set, is called once per finished exec session (in the
	// session's goroutine; keep it quick).
	SessionHook func(SessionInfo)
	// Greeting returns the text a shell request is answered with on stderr
	// (ssh -T git@host, or ssh with no command), before exit status 1; nil
	// means DefaultGreeting ("Hi <name>! You've successfully authenticated, but
	// gitfleet does not provide shell access."). It is given the authenticated
	// principal; no shell is ever run.
	Greeting func(Principal) string

	// PublicKeyAlgorithms are the signature algorithms accepted for client keys;
	// nil means DefaultPublicKeyAlgorithms(). Listing ssh.KeyAlgoRSA re-enables
	// SHA-1 RSA signatures.
	PublicKeyAlgorithms []string
	// MinRSABits is the smallest RSA client key accepted; zero or negative means
	// DefaultMinRSABits (2048), and a value below 1024 counts as 1024 (the key
	// policy is gitfleet.KeyPolicy, restricted to the key types that
	// PublicKeyAlgorithms can authenticate).
	MinRSABits int
	// KeyExchanges, Ciphers and MACs are the transport algorithms offered, in order
	// of preference; nil means DefaultKeyExchanges(), DefaultCiphers(),
	// DefaultMACs(). The server chooses the cipher and the MAC: the first of its
	// list that the client supports (see ClientChooses).
	KeyExchanges, Ciphers, MACs []string
	// ClientChooses turns off the server's choice of cipher and MAC: the whole lists
	// are offered and the client picks by its own preference, as in plain SSH
	// (OpenSSH clients then pick chacha20-poly1305, which costs the server more CPU
	// than AES-GCM). By default the server reads the client's KEXINIT first and
	// offers it only the first cipher and MAC of its own lists that it supports.
	ClientChooses bool
	// DisabledKeyExchanges, DisabledCiphers and DisabledMACs are removed from the
	// lists above, as Bitbucket's plugin.ssh.disabled.key.exchanges, .ciphers and
	// .macs properties do. Removing every algorithm of a kind is an error at Serve.
	DisabledKeyExchanges, DisabledCiphers, DisabledMACs []string

	// ProxyProtocol says whether connections start with a PROXY protocol header;
	// the zero value is gitfleet.ProxyOff.
	ProxyProtocol gitfleet.ProxyPolicy
	// ProxyTrusted lists the peers (load balancers) allowed to send a PROXY
	// header. Under gitfleet.ProxyOptional a header from any other peer closes the
	// connection; under gitfleet.ProxyRequired any connection from another peer is
	// closed.
	ProxyTrusted []netip.Prefix
	// ProxyHeaderTimeout bounds the wait for a PROXY header; zero means 5 seconds.
	ProxyHeaderTimeout time.Duration

	// LoginGraceTime bounds the time from accepting a connection to the end of
	// authentication; zero means 30 seconds, negative means no limit.
	LoginGraceTime time.Duration
	// MaxAuthTries bounds authentication attempts per connection; zero means 6,
	// negative means no limit.
	MaxAuthTries int
	// MaxStartups bounds connections that have not yet authenticated, like
	// OpenSSH's MaxStartups. When it is full, a connection from an address that
	// holds fewer unauthenticated connections than the address holding the most
	// is admitted, and that address's oldest unauthenticated connection is closed
	// (a flood from a few addresses cannot lock others out); any other newcomer is
	// closed at once. A connection counts from the moment its client address is
	// known (after any PROXY header, which ProxyHeaderTimeout bounds) and after
	// the per-address limits have admitted it. Zero means 100, negative means no
	// limit.
	MaxStartups int
	// MaxStartupsPerIP bounds unauthenticated connections from one client address,
	// so that one source cannot take all of MaxStartups. Zero means 50, negative
	// means no limit.
	MaxStartupsPerIP int
	// StartupQueueWait is how long a connection that MaxStartups or
	// MaxStartupsPerIP would refuse waits for an unauthenticated slot to free
	// before it is refused: a storm of CI jobs behind one address (dozens of
	// clones in the same second) then queues for a few milliseconds instead of
	// failing, while a flood that holds its slots is still refused. Zero
	// means 3 s, negative means no wait.
	StartupQueueWait time.Duration
	// MaxConns bounds open connections; zero means 4096, negative means no limit.
	MaxConns int
	// MaxConnsPerIP bounds open connections from one client address; zero means
	// 256, negative means no limit.
	MaxConnsPerIP int
	// MaxSessions bounds concurrent sessions (channels) per connection; zero means
	// 10, negative means no limit.
	MaxSessions int
	// IdleTimeout closes an authenticated connection whose sessions have moved no
	// data in either direction for this long; zero means 10 minutes, negative
	// means never.
	IdleTimeout time.Duration
	// KeepAliveInterval is how often an authenticated connection is probed with a
	// keepalive request; zero means 15 seconds, negative means never.
	KeepAliveInterval time.Duration
	// KeepAliveCountMax is how many probes may go unanswered before the connection
	// is closed; zero means 3.
	KeepAliveCountMax int
	// MaxSessionTime bounds the duration of one session; zero or negative means
	// no limit.
	MaxSessionTime time.Duration
	// InputEndWait is how long the channel of a git command that succeeded
	// stays open after its exit status, waiting for the client to end its
	// input (EOF or close), before the server closes it. Clients close their side when the answer
	// is in, so this costs them nothing; but some write their end of input
	// just after the last request or pack (go-git v5 does) and report a
	// successful push or fetch as failed ("EOF") when the channel closed
	// first, which a loaded machine makes likely. Input that arrives in the
	// meantime is discarded. Zero means 2 seconds, negative means close at
	// once (as OpenSSH's sshd does). A failed command, whoami and greetings
	// never wait: git's client keeps its input open until the server closes
	// after a refusal, and a terminal does not end its input.
	InputEndWait time.Duration
	// NoOutputPacing turns off the pacing of git's output, which otherwise adapts
	// the sending rate to how fast the client consumes (OpenSSH's client spends
	// most of a clone copying its receive buffer when the server sends faster
	// than git on its side reads; see the package documentation).
	NoOutputPacing bool

	initOnce sync.Once
	initErr  error
	keyTypes []string
	algos    algorithms

	mu            sync.Mutex
	listeners     map[*net.Listener]struct{}
	conns         map[*conn]struct{}
	connsPerIP    map[netip.Addr]int
	startupsPerIP map[netip.Addr]int
	startups      int
	startupFreed  chan struct{} // closed when an unauthenticated slot frees; nil when none waits
	inShutdown    atomic.Bool
	connWG        sync.WaitGroup
	nextID        atomic.Uint64
	stats         stats
}

// init validates the configuration and derives what every connection shares. It
// runs once, at the first Serve.
func (s *Server) init() error {
	s.initOnce.Do(func() {
		if len(s.HostKeys) == 0 {
			s.initErr = errors.New("sshserve: no host keys configured (see LoadOrCreateHostKeys)")
			return
		}
		algos := s.PublicKeyAlgorithms
		if algos == nil {
			algos = DefaultPublicKeyAlgorithms()
		}
		s.keyTypes = keyTypesFor(algos)
		if len(s.TrustedUserCAKeys) > 0 && s.CertificateCallback == nil {
			s.initErr = errors.New("sshserve: TrustedUserCAKeys is set but CertificateCallback is nil (see PrincipalsCallback)")
			return
		}
		for _, ca := range s.TrustedUserCAKeys {
			if err := checkCAKey(ca, gitfleet.KeyPolicy{MinRSABits: s.minRSABits(), Types: s.keyTypes}); err != nil {
				s.initErr = fmt.Errorf("sshserve: TrustedUserCAKeys: %w", err)
				return
			}
		}
		s.algos, s.initErr = s.transportAlgorithms()
		s.algos.publicKey = algos
	})
	return s.initErr
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// ListenAndServe listens on s.Addr (":7999" when empty) and serves until Shutdown
// or Close, after which it returns ErrServerClosed.
func (s *Server) ListenAndServe() error {
	if s.inShutdown.Load() {
		return ErrServerClosed
	}
	addr := s.Addr
	if addr == "" {
		addr = ":7999"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Serve accepts connections on l and serves each in its own goroutine until
// Shutdown or Close, after which it returns ErrServerClosed; l is closed when Serve
// returns. Any PROXY header is read in the connection's goroutine, never here.
func (s *Server) Serve(l net.Listener) error {
	if err := s.init(); err != nil {
		l.Close()
		return err
	}
	if !s.trackListener(&l, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.trackListener(&l, false)
	log := s.logger()
	log.Info("serving", "addr", l.Addr().String())
	// Accept errors other than a closed listener (EMFILE, ENFILE) are retried
	// after a growing delay.
	backoff := gitfleet.Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	failures := 0
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			failures++
			delay := backoff.Delay(failures)
			log.Warn("accept failed; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		failures = 0
		s.stats.totalConns.Add(1)
		if reason := s.admitAccepted(); reason != "" {
			s.stats.reject(reason)
			log.Info("connection refused: limit reached", "remote", nc.RemoteAddr().String(), "limit", reason)
			nc.Close()
			continue
		}
		c := s.newConn(nc)
		if c == nil { // shutting down
			nc.Close()
			continue
		}
		go c.serve()
	}
}

func (s *Server) trackListener(l *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.inShutdown.Load() {
			return false
		}
		if s.listeners == nil {
			s.listeners = map[*net.Listener]struct{}{}
		}
		s.listeners[l] = struct{}{}
	} else {
		delete(s.listeners, l)
	}
	return true
}

// newConn registers a new connection, or returns nil when the server is shutting
// down.
func (s *Server) newConn(nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{srv: s, nc: withQuickAck(nc), id: s.nextID.Add(1), ctx: ctx, cancel: cancel, log: s.logger(),
		remote: nc.RemoteAddr(), local: nc.LocalAddr()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		cancel()
		return nil
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.stats.openConns.Add(1)
	return c
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.stats.openConns.Add(-1)
	s.connWG.Done()
}

func (s *Server) closeListeners() {
	for l := range s.listeners {
		(*l).Close()
	}
}

// Shutdown stops the server gracefully: it closes the listeners, closes every
// connection that has no running session (including those still authenticating),
// refuses new sessions, and waits for running git sessions to finish, closing each
// connection as its last session ends. When ctx ends first, it closes everything
// as Close does, waits for the connection goroutines, and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.inShutdown.Store(true)
	s.closeListeners()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.closeIfIdle()
	}
	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once; running git sessions
// see their context cancelled. It waits for the connection goroutines to end (so a
// Backend must honour its context) and is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	s.inShutdown.Store(true)
	s.closeListeners()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close(RejectShutdown)
	}
	s.connWG.Wait()
	return nil
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	st := s.stats.snapshot()
	s.mu.Lock()
	st.Authenticating = int64(s.startups)
	s.mu.Unlock()
	return st
}
