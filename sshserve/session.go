package sshserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

// Messages a client sees on stderr.
const (
	msgUnknownCommand = "gitfleet: unknown command; this server runs only git-upload-pack, git-receive-pack, git-upload-archive, git-lfs-transfer and whoami\n"
	// msgLFSAuthenticate answers git-lfs-authenticate, which git-lfs sends only
	// when it could not use the SSH transfer protocol.
	msgLFSAuthenticate = "gitfleet: Git LFS is served over SSH (git-lfs-transfer), which needs git-lfs 3.0 or later; there is no HTTPS endpoint to authenticate for\n"
	msgBadPath         = "gitfleet: invalid repository path\n"
	msgInternal        = "gitfleet: internal server error\n"
)

// runSession serves one session channel: it accepts GIT_PROTOCOL as the only
// environment variable and one exec or shell request (a shell request is
// answered with the greeting: see greet), and refuses everything else (pty-req,
// x11-req, subsystem, auth-agent-req, signals).
func (c *conn) runSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer c.sessionDone()
	s := c.srv
	s.stats.openSessions.Add(1)
	defer s.stats.openSessions.Add(-1)
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	c.touch()
	protocol := 0
	var done chan struct{}
	for req := range reqs {
		switch req.Type {
		case "env":
			ok := done == nil && c.acceptEnv(req.Payload, &protocol)
			req.Reply(ok, nil)
		case "exec":
			var cmd struct{ Command string }
			if done != nil || ssh.Unmarshal(req.Payload, &cmd) != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			done = make(chan struct{})
			go func(protocol int) {
				defer close(done)
				c.exec(ctx, ch, cmd.Command, protocol)
			}(protocol)
		case "shell":
			if done != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			done = make(chan struct{})
			go func() {
				defer close(done)
				c.greet(ch)
			}()
		default:
			s.stats.reject(RejectRequest)
			c.log.Info("session request refused", "conn", c.id, "type", printable(req.Type))
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
	cancel()
	if done != nil {
		<-done
	}
	ch.Close()
}

// DefaultGreeting is the text a shell request (ssh -T git@host, or ssh with no
// command) is answered with when Server.Greeting is nil: the words GitHub and
// Gitea use, naming the authenticated principal.
func DefaultGreeting(p Principal) string {
	return "Hi " + printable(p.Name) + "! You've successfully authenticated, but gitfleet does not provide shell access.\n"
}

// greet answers a shell request: the greeting on stderr, exit status 1 (as GitHub
// and Gitea answer), close. It is the check users know from those servers: ssh -T
// says whether their key works and as whom.
func (c *conn) greet(ch ssh.Channel) {
	s := c.srv
	text := DefaultGreeting(c.principal)
	if s.Greeting != nil {
		text = s.Greeting(c.principal)
	}
	errw := &countingWriter{w: ch.Stderr(), c: c}
	_, err := io.WriteString(errw, text)
	ch.CloseWrite()
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{1}))
	ch.Close()
	s.stats.greetings.Add(1)
	s.stats.bytesOut.Add(uint64(errw.n.Load()))
	c.log.Info("greeted", "conn", c.id, "remote", addrString(c.remote), "principal", c.principal.Name, "err", err)
}

// acceptEnv accepts GIT_PROTOCOL=version=0|1|2 (gitfleet.ParseProtocol) into
// protocol and refuses any other variable or value.
func (c *conn) acceptEnv(payload []byte, protocol *int) bool {
	var kv struct{ Name, Value string }
	if err := ssh.Unmarshal(payload, &kv); err == nil && kv.Name == "GIT_PROTOCOL" {
		if v, err := gitfleet.ParseProtocol(kv.Value); err == nil {
			*protocol = v
			return true
		}
	}
	c.srv.stats.reject(RejectRequest)
	c.log.Info("environment variable refused", "conn", c.id, "name", printable(kv.Name), "value", printable(kv.Value))
	return false
}

// exec runs one command and ends the session: end of output, exit status, close.
func (c *conn) exec(ctx context.Context, ch ssh.Channel, line string, protocol int) {
	s := c.srv
	info := SessionInfo{Conn: c.info, Principal: c.principal, Start: time.Now()}
	if d := s.MaxSessionTime; d > 0 {
		t := time.AfterFunc(d, func() {
			c.log.Info("session closed", "conn", c.id, "reason", RejectSessionTime)
			s.stats.reject(RejectSessionTime)
			ch.Close()
		})
		defer t.Stop()
	}
	input := &sessionInput{r: ch}
	in := &countingReader{r: input, c: c}
	var stdout io.Writer = ch
	// git-lfs reads what arrives at once (into a file), so OpenSSH's buffer
	// never grows behind it: its transfers go unpaced, at the network's speed.
	if !s.NoOutputPacing && !strings.HasPrefix(line, string(gitfleet.LFSTransfer)+" ") {
		stdout = newPacer(ch)
	}
	out := &countingWriter{w: stdout, c: c}
	errw := &countingWriter{w: ch.Stderr(), c: c}
	status, err := c.run(ctx, &info, line, protocol, in, out, errw)
	ch.CloseWrite()
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
	info.Duration = time.Since(info.Start)
	var drained <-chan struct{}
	if status == 0 && info.Service != CommandWhoami {
		drained = c.awaitInputEnd(ctx, input)
	}
	ch.Close()
	if drained != nil {
		<-drained // the close ended its read
	}

	info.BytesIn, info.BytesOut = in.n.Load(), out.n.Load()+errw.n.Load()
	info.ExitStatus, info.Err = status, err
	s.stats.bytesIn.Add(uint64(info.BytesIn))
	s.stats.bytesOut.Add(uint64(info.BytesOut))
	level := c.log.Info
	if status != 0 {
		level = c.log.Warn
	}
	level("session", "conn", c.id, "remote", addrString(c.remote), "principal", c.principal.Name,
		"service", info.Service, "repo", info.Repo.String(), "status", status,
		"bytes_in", info.BytesIn, "bytes_out", info.BytesOut, "duration", info.Duration, "err", err)
	if s.SessionHook != nil {
		s.SessionHook(info)
	}
}

// maxInputDrain bounds what awaitInputEnd reads and discards: a client that
// is still sending after its command ended is not ending its input.
const maxInputDrain = 64 << 10

// awaitInputEnd waits, for at most Server.InputEndWait, until the client ends
// its input in (see InputEndWait), discarding what it still sends, or ctx
// ends. The returned channel is closed when its reader has returned, which
// closing the channel in reads makes it do; it is nil when there is no wait.
func (c *conn) awaitInputEnd(ctx context.Context, in *sessionInput) <-chan struct{} {
	d := orDefault(c.srv.InputEndWait, DefaultInputEndWait)
	if d <= 0 {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.CopyN(io.Discard, in, maxInputDrain)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		c.log.Debug("session input did not end; closing", "conn", c.id, "wait", d)
	case <-ctx.Done():
	}
	return done
}

// sessionInput serialises the reads of a session's input and remembers its
// end. x/crypto/ssh wakes one blocked reader of a channel when the client's
// EOF arrives, so with two readers waiting at once (a backend's goroutine
// still copying input after its command ended, and awaitInputEnd) one of them
// would wait for ever. Reads of one stream are sequential anyway.
type sessionInput struct {
	mu  sync.Mutex
	r   io.Reader
	eof bool
}

func (s *sessionInput) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.eof {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.eof = true
	}
	return n, err
}

// run parses, authorizes and runs a command, returning its exit status. The
// command is parsed here once; the backend receives the parsed request.
func (c *conn) run(ctx context.Context, info *SessionInfo, line string, protocol int, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	s := c.srv
	cmd, err := ParseCommand(line)
	if err != nil {
		if errors.Is(err, ErrUnknownCommand) {
			io.WriteString(stderr, msgUnknownCommand)
		} else {
			io.WriteString(stderr, msgBadPath)
		}
		return 1, err
	}
	info.Service, info.Repo = cmd.Service, cmd.Repo
	s.stats.session(cmd.Service)
	if cmd.Service == CommandWhoami {
		_, err := fmt.Fprintf(stdout, "%s\n", c.principal.Name)
		return 0, err
	}
	if err := c.authorize(ctx, cmd); err != nil {
		var d *DeniedError
		if errors.As(err, &d) {
			io.WriteString(stderr, d.Message+"\n")
		} else {
			io.WriteString(stderr, NotFoundMessage)
		}
		return 1, err
	}
	if cmd.Service == CommandLFSAuthenticate {
		io.WriteString(stderr, msgLFSAuthenticate)
		return 1, nil
	}
	if s.Backend == nil {
		io.WriteString(stderr, msgInternal)
		return 1, errors.New("sshserve: no Backend configured")
	}
	req := cmd.Request(protocol)
	req.User = c.principal.Name
	err = s.Backend.ServeGit(ctx, req, stdin, stdout, stderr)
	if errors.Is(err, gitfleet.ErrNotFound) {
		// The backend found no repository and wrote nothing: the same answer as a
		// refusal.
		io.WriteString(stderr, NotFoundMessage)
		return 1, err
	}
	return exitCode(err), err
}

// authorize asks the Authorizer. Whether the repository exists is the backend's
// answer (see GitBackend).
func (c *conn) authorize(ctx context.Context, cmd Command) error {
	s := c.srv
	if s.Authorizer == nil {
		return fmt.Errorf("%w: no Authorizer configured", ErrDenied)
	}
	if err := s.Authorizer(ctx, c.info, c.principal, cmd.Repo.Project, cmd.Repo.Slug, cmd.Access()); err != nil {
		if !errors.Is(err, ErrDenied) && !errors.Is(err, ErrNotFound) {
			c.log.Warn("authorizer failed", "conn", c.id, "principal", c.principal.Name, "repo", cmd.Repo.String(), "err", err)
		}
		return err
	}
	return nil
}

// countingReader and countingWriter count session bytes and record activity for
// the idle timeout. They add two atomic stores per call and no copy.
type countingReader struct {
	r io.Reader
	c *conn
	n atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.n.Add(int64(n))
		r.c.touch()
	}
	return n, err
}

type countingWriter struct {
	w io.Writer
	c *conn
	n atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if n > 0 {
		w.n.Add(int64(n))
		w.c.touch()
	}
	return n, err
}
