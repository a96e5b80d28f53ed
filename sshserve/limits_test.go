package sshserve_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// scriptBackend stands in for git where a test needs a session of a known shape.
type scriptBackend struct{ ticks int }

func (b scriptBackend) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	repo := req.Repo.String()
	switch repo {
	case "PROJ/drip": // output only: a byte every 100 ms
		for i := 0; i < b.ticks; i++ {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := stdout.Write([]byte("x")); err != nil {
				return err
			}
		}
		return nil
	case "PROJ/sink": // input only: count what the client sends
		n, err := io.Copy(io.Discard, stdin)
		fmt.Fprintf(stdout, "%d", n)
		return err
	case "PROJ/block":
		<-ctx.Done()
		return ctx.Err()
	}
	return fmt.Errorf("no script for %s", repo)
}

func withScript(ticks int) sshservetest.Option {
	return func(s *sshserve.Server) { s.Backend = scriptBackend{ticks: ticks} }
}

func goClient(t *testing.T, srv *sshservetest.Server) *ssh.Client {
	t.Helper()
	c, err := dialGo(t, srv, ssh.PublicKeys(srv.User.Signer))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitClosed waits for the client connection to end.
func waitClosed(t *testing.T, c *ssh.Client, within time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		t.Fatalf("connection still open after %v", within)
	}
}

func waitStat(t *testing.T, srv *sshservetest.Server, reason string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.Stats().Rejected[reason] < want {
		if time.Now().After(deadline) {
			t.Fatalf("rejections for %s: %d, want %d", reason, srv.Stats().Rejected[reason], want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readsEOF reports whether c is closed by the server within d, having sent at
// most a banner.
func readsEOF(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return err == nil // io.Copy returns nil at EOF
}

func TestLoginGrace(t *testing.T) {
	var logs logBuffer
	srv := sshservetest.NewServer(t, sshservetest.WithLogger(logs.logger()),
		func(s *sshserve.Server) { s.LoginGraceTime = 300 * time.Millisecond })
	// Connects and sends nothing.
	silent := dialFrom(t, srv, "127.0.0.1")
	// Sends its banner, then nothing.
	stalled := dialFrom(t, srv, "127.0.0.1")
	stalled.Write([]byte("SSH-2.0-stall\r\n"))
	for _, c := range []net.Conn{silent, stalled} {
		if !readsEOF(c, 10*time.Second) {
			t.Fatal("a connection that never authenticated was not closed")
		}
	}
	waitStat(t, srv, sshserve.RejectLoginGrace, 2)
	mustContain(t, "log", logs.String(), "reason="+sshserve.RejectLoginGrace)
	// After authentication the grace deadline no longer applies.
	c := goClient(t, srv)
	time.Sleep(500 * time.Millisecond)
	if got := whoami(t, c); got != sshservetest.DefaultUser+"\n" {
		t.Fatalf("whoami after the grace time: %q", got)
	}
}

func TestMaxAuthTries(t *testing.T) {
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.MaxAuthTries = 3 })
	var wrong []ssh.Signer
	for i := 0; i < 4; i++ {
		wrong = append(wrong, testutil.GenerateKey(t, testutil.Ed25519).Signer)
	}
	if _, err := dialGo(t, srv, ssh.PublicKeys(append(wrong, srv.User.Signer)...)); err == nil {
		t.Fatal("logged in after more failed attempts than MaxAuthTries")
	}
	if _, err := dialGo(t, srv, ssh.PublicKeys(wrong[0], srv.User.Signer)); err != nil {
		t.Fatalf("one wrong key then the right one: %v", err)
	}
	if srv.Stats().AuthFailures == 0 {
		t.Fatal("auth failures not counted")
	}
}

// TestUnauthenticatedFlood opens 500 connections that never authenticate, from
// one address, while legitimate clones run from another: the limits hold, the
// clones succeed, and the flood is freed after the login grace time.
func TestUnauthenticatedFlood(t *testing.T) {
	const flood = 500
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.LoginGraceTime = 3 * time.Second })
	srv.SeedRepo("PROJ", "repo")
	conns := make([]net.Conn, 0, flood)
	for i := 0; i < flood; i++ {
		conns = append(conns, dialFrom(t, srv, "127.0.0.2"))
	}
	git := gitAs(t, srv.User)
	for i := 0; i < 3; i++ {
		dst := tempDir(t, fmt.Sprintf("clone%d", i))
		if _, err := git.TryRun("", "clone", "-q", srv.URL("PROJ", "repo"), dst); err != nil {
			t.Fatalf("legitimate clone %d during the flood: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	closed := make(chan bool, flood)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			closed <- readsEOF(c, 20*time.Second)
		}()
	}
	wg.Wait()
	close(closed)
	for ok := range closed {
		if !ok {
			t.Fatal("a flood connection was still open after the login grace time")
		}
	}
	// Each flood connection was closed for exactly one reason: refused by the
	// per-address limit, or held until the login grace time ended. No more than
	// the per-address limit were held at once: a connection refused after
	// waiting StartupQueueWait (3 s, as long as the grace time here) may have
	// taken a slot freed when the first ones' grace ended, so at most two
	// generations of them were held in all.
	// (The server closes a connection just before it counts the reason: wait for
	// the counts to settle.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := srv.Stats()
		refused := st.Rejected[sshserve.RejectStartupsPerIP] + st.Rejected[sshserve.RejectMaxStartups]
		held := st.Rejected[sshserve.RejectLoginGrace]
		if refused+held == flood && held <= 2*sshserve.DefaultMaxStartupsPerIP && refused >= flood-2*sshserve.DefaultMaxStartupsPerIP {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rejections %v: want %d in all, at most %d held", st.Rejected, flood, 2*sshserve.DefaultMaxStartupsPerIP)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMaxStartups(t *testing.T) {
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.MaxStartups = 5; s.MaxStartupsPerIP = -1 })
	var held []net.Conn
	for i := 0; i < 5; i++ {
		c := dialFrom(t, srv, "127.0.0.1")
		held = append(held, c)
		// Each of these gets a banner: it is being served.
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
			t.Fatalf("connection %d: %q %v", i, line, err)
		}
	}
	// The address that holds them all gets no more.
	extra := dialFrom(t, srv, "127.0.0.1")
	if !readsEOF(extra, 5*time.Second) {
		t.Fatal("connection beyond MaxStartups was served")
	}
	if srv.Stats().Rejected[sshserve.RejectMaxStartups] != 1 {
		t.Fatalf("rejections %v", srv.Stats().Rejected)
	}
	// Another address is admitted: the oldest of the first address's
	// unauthenticated connections makes room.
	if _, err := sshOver(srv, dialFrom(t, srv, "127.0.0.2")); err != nil {
		t.Fatalf("a client from another address was kept out: %v", err)
	}
	if !readsEOF(held[0], 5*time.Second) {
		t.Fatal("the oldest connection of the address holding the most was not closed")
	}
	if got := srv.Stats().Rejected[sshserve.RejectStartupEvicted]; got != 1 {
		t.Fatalf("evictions %d, want 1 (%v)", got, srv.Stats().Rejected)
	}
	held[1].Close()
	time.Sleep(100 * time.Millisecond)
	if _, err := sshOver(srv, dialFrom(t, srv, "127.0.0.1")); err != nil {
		t.Fatalf("a slot freed by a closed connection was not reused: %v", err)
	}
}

// TestStartupFloodFromFewAddresses: idle connections from six addresses keep
// MaxStartups full, reconnecting as soon as they are closed, for as long as the
// test runs; a client from any other address clones every time.
func TestStartupFloodFromFewAddresses(t *testing.T) {
	srv := sshservetest.NewServer(t)
	srv.SeedRepo("PROJ", "repo")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	const perAddr = 50 // 6 x 50 = 300, three times DefaultMaxStartups
	for a := 2; a <= 7; a++ {
		for i := 0; i < perAddr; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.0.%d", a))}}
				for ctx.Err() == nil {
					c, err := d.DialContext(ctx, "tcp", srv.Addr())
					if err != nil {
						time.Sleep(10 * time.Millisecond)
						continue
					}
					mu.Lock()
					open = append(open, c)
					mu.Unlock()
					io.Copy(io.Discard, c) // idle until the server closes it
					c.Close()
				}
			}()
		}
	}
	defer func() {
		cancel()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	// Wait until the flood holds every slot.
	deadline := time.Now().Add(20 * time.Second)
	for srv.Stats().Authenticating < sshserve.DefaultMaxStartups {
		if time.Now().After(deadline) {
			t.Fatalf("the flood did not fill MaxStartups: %+v", srv.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	git := gitAs(t, srv.User)
	for i := 0; i < 5; i++ {
		dst := tempDir(t, fmt.Sprintf("clone%d", i))
		start := time.Now()
		if out, err := git.TryRun("", "clone", "-q", srv.URL("PROJ", "repo"), dst); err != nil {
			t.Fatalf("clone %d from an address outside the flood: %v\n%s", i, err, out)
		}
		t.Logf("clone %d during the flood: %v", i, time.Since(start).Round(time.Millisecond))
	}
	st := srv.Stats()
	if st.Rejected[sshserve.RejectStartupEvicted] < 5 {
		t.Fatalf("evictions %d, want one per clone at least (%v)", st.Rejected[sshserve.RejectStartupEvicted], st.Rejected)
	}
}

func TestMaxConns(t *testing.T) {
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.MaxConns = 3; s.MaxConnsPerIP = 2 })
	for i := 0; i < 2; i++ {
		if _, err := sshOverKeep(t, srv, dialFrom(t, srv, "127.0.0.1")); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	if _, err := sshOver(srv, dialFrom(t, srv, "127.0.0.1")); err == nil {
		t.Fatal("third connection from one address accepted with MaxConnsPerIP 2")
	}
	if _, err := sshOverKeep(t, srv, dialFrom(t, srv, "127.0.0.2")); err != nil {
		t.Fatalf("another address: %v", err)
	}
	if _, err := sshOver(srv, dialFrom(t, srv, "127.0.0.3")); err == nil {
		t.Fatal("fourth connection accepted with MaxConns 3")
	}
	st := srv.Stats()
	if st.Rejected[sshserve.RejectMaxConnsPerIP] != 1 || st.Rejected[sshserve.RejectMaxConns] != 1 {
		t.Fatalf("rejections %v", st.Rejected)
	}
}

// sshOverKeep is sshOver leaving the connection open until the test ends.
func sshOverKeep(t *testing.T, srv *sshservetest.Server, c net.Conn) (*ssh.Client, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	sc, chans, reqs, err := ssh.NewClientConn(c, srv.Addr(), &ssh.ClientConfig{
		User: "git", Auth: []ssh.AuthMethod{ssh.PublicKeys(srv.User.Signer)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey), HostKeyAlgorithms: []string{srv.HostKey.Type()},
	})
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	t.Cleanup(func() { client.Close() })
	return client, nil
}

func TestMaxSessions(t *testing.T) {
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.MaxSessions = 2 })
	c := goClient(t, srv)
	for i := 0; i < 2; i++ {
		s, err := c.NewSession()
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		defer s.Close()
	}
	if _, err := c.NewSession(); err == nil {
		t.Fatal("third session accepted with MaxSessions 2")
	}
	if srv.Stats().Rejected[sshserve.RejectMaxSessions] != 1 {
		t.Fatalf("rejections %v", srv.Stats().Rejected)
	}
}

func TestIdleTimeout(t *testing.T) {
	srv := sshservetest.NewServer(t, withScript(15), func(s *sshserve.Server) { s.IdleTimeout = 500 * time.Millisecond })
	t.Run("idle connection", func(t *testing.T) {
		waitClosed(t, goClient(t, srv), 10*time.Second)
		waitStat(t, srv, sshserve.RejectIdle, 1)
	})
	t.Run("output only keeps it alive", func(t *testing.T) {
		s, err := goClient(t, srv).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Output("git-upload-pack 'PROJ/drip'")
		if err != nil || len(out) != 15 {
			t.Fatalf("a session sending output for 1.5 s was cut: %q %v", out, err)
		}
	})
	t.Run("input only keeps it alive", func(t *testing.T) {
		s, err := goClient(t, srv).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		stdin, _ := s.StdinPipe()
		var out strings.Builder
		s.Stdout = &out
		if err := s.Start("git-receive-pack 'PROJ/sink'"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 15; i++ {
			time.Sleep(100 * time.Millisecond)
			if _, err := stdin.Write([]byte("y")); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}
		stdin.Close()
		if err := s.Wait(); err != nil || out.String() != "15" {
			t.Fatalf("a session receiving input for 1.5 s was cut: %q %v", out.String(), err)
		}
	})
}

func TestMaxSessionTime(t *testing.T) {
	srv := sshservetest.NewServer(t, withScript(0), func(s *sshserve.Server) { s.MaxSessionTime = 300 * time.Millisecond })
	s, err := goClient(t, srv).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run("git-upload-pack 'PROJ/block'") }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a session cut by MaxSessionTime reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session outlived MaxSessionTime")
	}
	waitStat(t, srv, sshserve.RejectSessionTime, 1)
}

// freezer relays one TCP connection and can stop relaying, as a dead network
// path would, without closing anything.
type freezer struct {
	l      net.Listener
	frozen chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup
}

func newFreezer(t *testing.T, target string) *freezer {
	f := &freezer{l: testutil.Listen(t), frozen: make(chan struct{}), done: make(chan struct{})}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		in, err := f.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", target)
		if err != nil {
			in.Close()
			return
		}
		relay := func(dst, src net.Conn) {
			defer f.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				select {
				case <-f.frozen:
					<-f.done
					return
				default:
				}
				if err != nil {
					dst.Close()
					return
				}
				dst.Write(buf[:n])
			}
		}
		f.wg.Add(2)
		go relay(out, in)
		go relay(in, out)
		<-f.done
		in.Close()
		out.Close()
	}()
	t.Cleanup(func() {
		close(f.done)
		f.l.Close()
		f.wg.Wait()
	})
	return f
}

func TestKeepAlive(t *testing.T) {
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) {
		s.KeepAliveInterval = 200 * time.Millisecond
		s.KeepAliveCountMax = 2
		s.IdleTimeout = -1
	})
	// A live client answers the probes and stays connected.
	c := goClient(t, srv)
	time.Sleep(1200 * time.Millisecond)
	if got := whoami(t, c); got != sshservetest.DefaultUser+"\n" {
		t.Fatalf("whoami = %q", got)
	}
	if srv.Stats().Rejected[sshserve.RejectKeepAlive] != 0 {
		t.Fatal("a live client was closed for missed keepalives")
	}
	// A client behind a path that stops delivering is closed.
	f := newFreezer(t, srv.Addr())
	nc, err := net.Dial("tcp", f.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := sshOverKeep(t, srv, nc); err != nil {
		t.Fatal(err)
	}
	close(f.frozen)
	waitStat(t, srv, sshserve.RejectKeepAlive, 1)
}

func TestStatsAndSessionHook(t *testing.T) {
	var mu sync.Mutex
	var infos []sshserve.SessionInfo
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) {
		s.SessionHook = func(i sshserve.SessionInfo) {
			mu.Lock()
			infos = append(infos, i)
			mu.Unlock()
		}
	})
	srv.SeedRepo("PROJ", "repo")
	gitAs(t, srv.User).Run("", "clone", "-q", srv.URL("PROJ", "repo"), tempDir(t, "c"))
	dialGo(t, srv, ssh.PublicKeys(testutil.GenerateKey(t, testutil.Ed25519).Signer))
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(infos)
		mu.Unlock()
		if n == 1 && srv.Stats().OpenConns == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d session infos, %d open connections", n, srv.Stats().OpenConns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	i := infos[0]
	if i.Principal.Name != sshservetest.DefaultUser || i.Service != gitfleet.UploadPack || i.Repo.Project != "PROJ" ||
		i.Repo.Slug != "repo" || i.ExitStatus != 0 || i.Err != nil || i.BytesOut < 1000 || i.BytesIn == 0 || i.Duration <= 0 ||
		!strings.HasPrefix(i.Conn.RemoteAddr.String(), "127.0.0.1:") || i.Principal.Key == nil {
		t.Fatalf("session info %+v", i)
	}
	st := srv.Stats()
	if st.TotalConns != 2 || st.Sessions[gitfleet.UploadPack] != 1 || st.BytesOut != uint64(i.BytesOut) ||
		st.BytesIn != uint64(i.BytesIn) || st.AuthFailures == 0 || st.Rejected[sshserve.RejectHandshake] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStartupQueue: a connection beyond MaxStartupsPerIP waits for a slot
// instead of being refused (a CI storm behind one address), and is served as
// soon as one frees; without the wait it is refused at once.
func TestStartupQueue(t *testing.T) {
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) { s.MaxStartupsPerIP = 2; s.StartupQueueWait = 10 * time.Second })
	held := []net.Conn{dialFrom(t, srv, "127.0.0.1"), dialFrom(t, srv, "127.0.0.1")}
	for _, c := range held {
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
			t.Fatalf("held connection: %q %v", line, err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := sshOver(srv, dialFrom(t, srv, "127.0.0.1"))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the third connection was not held back: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	held[0].Close() // a slot frees
	if err := <-done; err != nil {
		t.Fatalf("the waiting connection failed: %v", err)
	}
	if n := srv.Stats().Rejected[sshserve.RejectStartupsPerIP]; n != 0 {
		t.Fatalf("%d connections refused for the per-address limit, want none", n)
	}

	noWait := sshservetest.NewServer(t, func(s *sshserve.Server) { s.MaxStartupsPerIP = 1; s.StartupQueueWait = -1 })
	h := dialFrom(t, noWait, "127.0.0.1")
	defer h.Close()
	bufio.NewReader(h).ReadString('\n')
	if !readsEOF(dialFrom(t, noWait, "127.0.0.1"), 5*time.Second) {
		t.Fatal("without a queue wait the connection beyond the limit was served")
	}
	if n := noWait.Stats().Rejected[sshserve.RejectStartupsPerIP]; n != 1 {
		t.Fatalf("rejections %v", noWait.Stats().Rejected)
	}
}
