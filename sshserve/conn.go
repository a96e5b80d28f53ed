package sshserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// conn is one client connection, from accept to close.
type conn struct {
	srv    *Server
	id     uint64
	nc     net.Conn // the accepted connection; closing it ends everything
	remote net.Addr // the client: the PROXY header's source when one was accepted
	local  net.Addr
	ip     netip.Addr // the address counted by admitIP, once it is

	// Guarded by srv.mu: set by admitIP while the connection counts as
	// unauthenticated (MaxStartups), cleared when it stops counting.
	startupIP netip.Addr
	startupAt time.Time

	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	sc        *ssh.ServerConn // set once authenticated
	info      ConnInfo        // set once authenticated
	principal Principal       // set once authenticated

	lastActive atomic.Int64 // unix nanoseconds of the last session traffic
	probes     atomic.Int32 // keepalive probes sent and not yet answered
	nextProbe  time.Time    // only touched by tick

	mu       sync.Mutex
	closed   bool
	sessions int
	timer    *time.Timer
	wg       sync.WaitGroup // sessions, ticks and keepalive probes
}

// serve runs the connection: PROXY header, per-address limits, handshake and
// authentication within the login grace time, then sessions until the client or
// the server closes the connection.
func (c *conn) serve() {
	s := c.srv
	defer s.removeConn(c)
	defer c.cancel()
	defer s.endStartup(c) // a no-op once the connection has authenticated
	defer c.close("")

	nc, err := c.acceptProxyHeader()
	if err != nil {
		return
	}
	ip, _ := addrIP(c.remote)
	reason, victim := s.admitIP(c, ip)
	if reason != "" {
		s.stats.reject(reason)
		c.log.Info("connection refused: limit reached", "conn", c.id, "remote", addrString(c.remote), "limit", reason)
		return
	}
	if victim != nil {
		victim.close(RejectStartupEvicted)
	}
	c.ip = ip
	defer s.releaseIP(ip)

	grace := orDefault(s.LoginGraceTime, DefaultLoginGraceTime)
	deadline := time.Now().Add(grace)
	if grace > 0 {
		nc.SetDeadline(deadline)
	}
	cfg := c.serverConfig()
	if !s.ClientChooses {
		var offer *clientOffer
		wait := time.Now().Add(offerWait)
		if grace > 0 && deadline.Before(wait) {
			wait = deadline
		}
		nc, offer = readOffer(nc, cfg.ServerVersion, wait)
		nc.SetReadDeadline(deadline) // back to the login grace (or none)
		if grace <= 0 {
			nc.SetReadDeadline(time.Time{})
		}
		if offer != nil {
			cfg.Ciphers = serverChoice(cfg.Ciphers, offer.cipherC2S, offer.cipherS2C)
			cfg.MACs = serverChoice(cfg.MACs, offer.macC2S, offer.macS2C)
		}
	}
	sconn, chans, reqs, err := ssh.NewServerConn(nc, cfg)
	if err != nil {
		reason := RejectHandshake
		var ne net.Error
		if grace > 0 && (errors.As(err, &ne) && ne.Timeout() || !time.Now().Before(deadline)) {
			reason = RejectLoginGrace
		}
		s.stats.reject(reason)
		c.log.Info("handshake failed", "conn", c.id, "remote", addrString(c.remote), "reason", reason, "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	s.endStartup(c)

	p, err := principalOf(sconn.Permissions)
	if err != nil {
		c.log.Error("authenticated connection without a principal", "conn", c.id, "err", err)
		sconn.Close()
		return
	}
	c.sc = sconn
	c.principal = p
	c.info = ConnInfo{ID: c.id, User: sconn.User(), RemoteAddr: c.remote, LocalAddr: c.local, ClientVersion: string(sconn.ClientVersion())}
	var algs ssh.NegotiatedAlgorithms
	if am, ok := sconn.Conn.(ssh.AlgorithmsConnMetadata); ok {
		algs = am.Algorithms()
	}
	s.stats.cipher(algs.Read.Cipher)
	key := p.Key
	cert, isCert := p.Key.(*ssh.Certificate)
	if isCert {
		key = cert.Key
	}
	attrs := []any{"conn", c.id, "remote", addrString(c.remote), "principal", p.Name,
		"kind", p.Kind.String(), "key", ssh.FingerprintSHA256(key), "key_type", p.Key.Type(),
		"client", printable(string(sconn.ClientVersion())), "kex", algs.KeyExchange, "cipher", algs.Read.Cipher,
		"mac", algs.Read.MAC}
	if isCert {
		attrs = append(attrs, "cert_id", printable(cert.KeyId),
			"cert_serial", cert.Serial, "ca", ssh.FingerprintSHA256(cert.SignatureKey))
	}
	c.log.Info("authenticated", attrs...)
	c.touch()
	c.startTimer()
	c.loop(chans, reqs)
	c.close("")
	c.wg.Wait()
}

// loop serves the connection's channel opens and global requests.
func (c *conn) loop(chans <-chan ssh.NewChannel, reqs <-chan *ssh.Request) {
	for chans != nil || reqs != nil {
		select {
		case nch, ok := <-chans:
			if !ok {
				chans = nil
				continue
			}
			c.openChannel(nch)
		case req, ok := <-reqs:
			if !ok {
				reqs = nil
				continue
			}
			// tcpip-forward, streamlocal-forward and the rest: no global requests
			// are served.
			c.srv.stats.reject(RejectRequest)
			c.log.Info("global request refused", "conn", c.id, "type", printable(req.Type))
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
}

func (c *conn) openChannel(nch ssh.NewChannel) {
	s := c.srv
	if t := nch.ChannelType(); t != "session" {
		s.stats.reject(RejectChannelType)
		c.log.Info("channel refused", "conn", c.id, "type", printable(t))
		nch.Reject(ssh.Prohibited, "only sessions running git commands are served")
		return
	}
	c.mu.Lock()
	if s.inShutdown.Load() || c.closed {
		c.mu.Unlock()
		s.stats.reject(RejectShutdown)
		nch.Reject(ssh.ResourceShortage, "server is shutting down")
		return
	}
	if m := orDefault(s.MaxSessions, DefaultMaxSessions); m > 0 && c.sessions >= m {
		c.mu.Unlock()
		s.stats.reject(RejectMaxSessions)
		c.log.Info("session refused: limit reached", "conn", c.id, "limit", RejectMaxSessions)
		nch.Reject(ssh.ResourceShortage, "too many sessions on this connection")
		return
	}
	c.sessions++
	c.wg.Add(1)
	c.mu.Unlock()
	ch, reqs, err := nch.Accept()
	if err != nil {
		c.sessionDone()
		return
	}
	go c.runSession(ch, reqs)
}

// sessionDone ends the bookkeeping of a session; during Shutdown the connection
// is closed once its last session has ended.
func (c *conn) sessionDone() {
	c.mu.Lock()
	c.sessions--
	last := c.sessions == 0
	c.mu.Unlock()
	c.wg.Done()
	if last && c.srv.inShutdown.Load() {
		c.close(RejectShutdown)
	}
}

// closeIfIdle closes the connection when no session is running.
func (c *conn) closeIfIdle() {
	c.mu.Lock()
	idle := c.sessions == 0
	c.mu.Unlock()
	if idle {
		c.close(RejectShutdown)
	}
}

// close closes the connection once; reason, when not empty, is logged and counted.
func (c *conn) close(reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	if reason != "" {
		c.srv.stats.reject(reason)
		c.log.Info("connection closed", "conn", c.id, "remote", addrString(c.remote), "reason", reason)
	}
	c.cancel()
	c.nc.Close()
}

// touch records session traffic for the idle timeout.
func (c *conn) touch() { c.lastActive.Store(time.Now().UnixNano()) }

// startTimer arms the timer that enforces the idle timeout and sends keepalives.
// It needs no goroutine of its own while nothing is due.
func (c *conn) startTimer() {
	next, ok := c.tickDue(time.Now())
	if !ok {
		return
	}
	c.mu.Lock()
	if !c.closed {
		c.timer = time.AfterFunc(next, c.tick)
	}
	c.mu.Unlock()
}

// tickDue returns how long until the timer must next run, or false when neither an
// idle timeout nor keepalives are configured.
func (c *conn) tickDue(now time.Time) (time.Duration, bool) {
	s := c.srv
	idle := orDefault(s.IdleTimeout, DefaultIdleTimeout)
	ka := orDefault(s.KeepAliveInterval, DefaultKeepAliveInterval)
	var next time.Duration
	if idle > 0 {
		next = idle - now.Sub(time.Unix(0, c.lastActive.Load()))
	}
	if ka > 0 {
		if c.nextProbe.IsZero() {
			c.nextProbe = now.Add(ka)
		}
		if d := c.nextProbe.Sub(now); next <= 0 || d < next {
			next = d
		}
	}
	return max(next, time.Millisecond), idle > 0 || ka > 0
}

// tick runs when the timer fires: it closes an idle connection or one whose
// keepalives go unanswered, sends a keepalive when one is due, and re-arms.
func (c *conn) tick() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()

	s := c.srv
	now := time.Now()
	if idle := orDefault(s.IdleTimeout, DefaultIdleTimeout); idle > 0 && now.Sub(time.Unix(0, c.lastActive.Load())) >= idle {
		c.close(RejectIdle)
		return
	}
	if ka := orDefault(s.KeepAliveInterval, DefaultKeepAliveInterval); ka > 0 && !now.Before(c.nextProbe) {
		if int(c.probes.Load()) >= orDefault(s.KeepAliveCountMax, DefaultKeepAliveCountMax) {
			c.close(RejectKeepAlive)
			return
		}
		c.nextProbe = now.Add(ka)
		c.probes.Add(1)
		c.mu.Lock()
		if !c.closed {
			c.wg.Add(1)
			go c.probe()
		}
		c.mu.Unlock()
	}
	next, _ := c.tickDue(now)
	c.mu.Lock()
	if !c.closed {
		c.timer.Reset(next)
	}
	c.mu.Unlock()
}

// probe sends one keepalive request and counts the answer (OpenSSH clients answer
// with a failure, which is an answer all the same).
func (c *conn) probe() {
	defer c.wg.Done()
	if _, _, err := c.sc.SendRequest("keepalive@openssh.com", true, nil); err == nil {
		c.probes.Add(-1)
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
