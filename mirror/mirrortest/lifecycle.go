package mirrortest

import (
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// liveServers are the primary's running servers.
type liveServers struct {
	up       *mirror.Upstream
	http     *http.Server
	httpDone chan struct{}
	ssh      *sshserve.Server
	sshDone  chan struct{}
}

// upstream returns the running Upstream.
func (p *Primary) upstream() *mirror.Upstream {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live == nil {
		return p.Upstream
	}
	return p.live.up
}

// start creates the Upstream and serves HTTPS on l and, with storage, SSH.
func (p *Primary) start(t testing.TB, l net.Listener) {
	t.Helper()
	up, err := mirror.NewUpstream(p.upCfg)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	ls := &liveServers{up: up, httpDone: make(chan struct{})}
	ls.http = &http.Server{
		Handler:   up,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{p.leaf.TLS}, MinVersion: tls.VersionTLS12},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	go func() { defer close(ls.httpDone); ls.http.ServeTLS(l, "", "") }()
	if p.storage {
		sl := p.sshListener
		if sl == nil {
			if sl, err = listenAgain(p.SSHPort); err != nil {
				t.Fatal(err)
			}
		}
		p.sshListener = nil
		ls.ssh = p.newSSHServer(up)
		ls.sshDone = make(chan struct{})
		go func() { defer close(ls.sshDone); ls.ssh.Serve(sl) }()
	}
	p.mu.Lock()
	p.live = ls
	p.Upstream = up
	p.SSH = ls.ssh
	p.mu.Unlock()
}

// listenAgain listens on a loopback port that was in use a moment ago, retrying
// briefly while the kernel releases it.
func listenAgain(port int) (net.Listener, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var err error
	for range 100 {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			return l, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

// Kill stops the primary at once, as a crash would: the HTTPS and SSH servers
// drop every connection (fetches in flight fail) and the Upstream stops. The
// database and the store stay. Kill is safe to call twice.
func (p *Primary) Kill() {
	p.mu.Lock()
	ls := p.live
	p.live = nil
	p.mu.Unlock()
	if ls == nil {
		return
	}
	ls.http.Close()
	<-ls.httpDone
	if ls.ssh != nil {
		ls.ssh.Close()
		<-ls.sshDone
	}
	ls.up.Close()
}

// Revive starts the primary again on the same addresses with a new Upstream
// over the same database: its change feed starts afresh, so mirrors' cursors
// are too old and they reconcile.
func (p *Primary) Revive(t testing.TB) {
	t.Helper()
	l, err := listenAgain(portOf(p.httpAddr))
	if err != nil {
		t.Fatal(err)
	}
	p.start(t, l)
}

func portOf(addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return n
}

// RotateHostKey restarts the primary with a new SSH host key, which the
// Upstream then offers to mirrors.
func (p *Primary) RotateHostKey(t testing.TB) {
	t.Helper()
	p.Kill()
	p.HostKey = testutil.GenerateKey(t, testutil.Ed25519)
	p.upCfg.SSHHostKeys = []ssh.PublicKey{p.HostKey.Public}
	p.KnownHosts = testutil.WriteKnownHosts(t, "127.0.0.1", p.SSHPort, p.HostKey.Public)
	p.Revive(t)
}

// ChangeSSHHostKeyOnly restarts the primary's SSH server with a new host key
// while the Upstream keeps offering the old one, as an impostor would.
func (p *Primary) ChangeSSHHostKeyOnly(t testing.TB) {
	t.Helper()
	p.Kill()
	p.HostKey = testutil.GenerateKey(t, testutil.Ed25519)
	p.Revive(t)
}

// StopSSH stops only the primary's SSH server, as a firewall closing its port
// would look to a mirror; Kill or Revive clean up the rest.
func (p *Primary) StopSSH() {
	p.mu.Lock()
	ls := p.live
	p.mu.Unlock()
	if ls == nil || ls.ssh == nil {
		return
	}
	ls.ssh.Close()
	<-ls.sshDone
}
