package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet"
)

// A git service over the sidecar takes two requests:
//
//  1. POST /v1/git with Upgrade: gitfleet-git and the service, repository,
//     GIT_PROTOCOL and whether the push must be signed in headers. The server answers 101 with a session id and the
//     connection then carries git's stdin (client to server) and stdout (server to
//     client) as raw bytes, with no framing. Either side's end of input is passed on
//     as a TCP half-close.
//  2. GET /v1/git/result?session=ID, whose body streams git's stderr and whose
//     trailers carry the exit status (and the error, if the service could not run).
//     When this request goes away before git ends, git is killed.

// sessionLinger is how long a finished session waits for its result request.
const sessionLinger = time.Minute

// maxStderr bounds the stderr a session buffers for a result request not yet read.
const maxStderr = 1 << 20

// gitSession is one git service's stderr and outcome, waiting for its result request.
type gitSession struct {
	cancel context.CancelFunc
	notify chan struct{} // capacity 1

	mu    sync.Mutex
	buf   []byte
	done  bool
	err   error
	taken bool
}

func (g *gitSession) Write(p []byte) (int, error) {
	g.mu.Lock()
	if len(g.buf) < maxStderr {
		g.buf = append(g.buf, p[:min(len(p), maxStderr-len(g.buf))]...)
	}
	g.mu.Unlock()
	g.wake()
	return len(p), nil
}

func (g *gitSession) finish(err error) {
	g.mu.Lock()
	g.done, g.err = true, err
	g.mu.Unlock()
	g.wake()
}

func (g *gitSession) wake() {
	select {
	case g.notify <- struct{}{}:
	default:
	}
}

// git serves POST /v1/git. The store checks that the repository exists before
// it starts git: a missing one is answered with the not-found status and no
// upgrade, so the client learns it from this one request. Only when the service is
// about to run is the connection hijacked and upgraded (see attachFunc).
func (s *Server) git(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != upgradeProto {
		writeJSON(w, http.StatusBadRequest, errorBody{Message: "mesh: git requests must upgrade to " + upgradeProto})
		return
	}
	service := gitfleet.Service(r.Header.Get(hdrService))
	if _, err := gitSubcommand(service); err != nil {
		writeError(w, err)
		return
	}
	repo, err := gitfleet.ParseRepoPath(r.Header.Get(hdrRepo))
	if err != nil {
		writeError(w, err)
		return
	}
	req := gitfleet.GitRequest{Service: service, Repo: repo, RequireSignedPush: r.Header.Get(hdrSignedPush) == "1",
		LFSOperation: r.Header.Get(hdrLFSOp), User: r.Header.Get(hdrUser)}
	if p := r.Header.Get(hdrProtocol); p != "" {
		if req.Protocol, err = gitfleet.ParseProtocol(p); err != nil {
			req.Protocol = 0 // as an SSH server drops a bad GIT_PROTOCOL
		}
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		writeError(w, ErrClosed)
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	sess := &gitSession{cancel: cancel, notify: make(chan struct{}, 1)}
	id := newSessionID()
	s.sessions[id] = sess
	s.gits.Add(1)
	s.mu.Unlock()
	defer s.gits.Done()
	defer cancel()

	var conn net.Conn
	var stdin *hijackedReader
	hijacked, upgraded := false, false
	var stopClose func() bool
	defer func() {
		if stopClose != nil {
			stopClose()
		}
	}()
	attach := func() (io.Reader, io.Writer, error) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			s.log.Error("mesh: hijack", "err", err)
			return nil, nil, err
		}
		hijacked, conn = true, c
		stopClose = context.AfterFunc(ctx, func() { c.Close() })
		stdin = &hijackedReader{br: brw.Reader, conn: c}
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s: %s\r\n\r\n", upgradeProto, hdrSession, id)
		if err := brw.Flush(); err != nil {
			return nil, nil, err
		}
		upgraded = true
		return stdin, c, nil
	}
	err = s.Store.serveGit(ctx, req, attach, sess)
	if !upgraded {
		s.dropSession(id)
		if hijacked {
			conn.Close()
			return
		}
		// Refused before the upgrade (not found, invalid name, closed) or the
		// hijack failed: an ordinary error response, and no session.
		if err == nil {
			err = errors.New("mesh: git service ended without its streams")
		}
		s.log.Debug("mesh: git service refused", "service", service, "repo", repo.String(), "err", err)
		writeError(w, err)
		return
	}
	defer conn.Close()
	sess.finish(err)
	if err != nil {
		s.log.Debug("mesh: git service ended", "service", service, "repo", repo.String(), "err", err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.CloseWrite() // the client's stdout sees EOF
	}
	// Closing with unread input would reset the connection and could destroy output
	// the client has not read yet: read until the client closes (briefly).
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, stdin)
	time.AfterFunc(sessionLinger, func() { s.dropSession(id) })
}

func (s *Server) dropSession(id string) {
	s.mu.Lock()
	delete(s.sessions, id)
	s.mu.Unlock()
}

// hijackedReader reads what the HTTP server had buffered, then the connection; it
// can be interrupted through SetReadDeadline.
type hijackedReader struct {
	br   *bufio.Reader
	conn net.Conn
}

func (h *hijackedReader) Read(p []byte) (int, error) {
	if h.br != nil {
		if h.br.Buffered() > 0 {
			return h.br.Read(p[:min(len(p), h.br.Buffered())])
		}
		h.br = nil
	}
	return h.conn.Read(p)
}

func (h *hijackedReader) SetReadDeadline(t time.Time) error { return h.conn.SetReadDeadline(t) }

func (s *Server) gitResult(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("session")
	s.mu.Lock()
	sess := s.sessions[id]
	if sess != nil {
		if sess.taken {
			sess = nil
		} else {
			sess.taken = true
		}
	}
	s.mu.Unlock()
	if sess == nil {
		writeJSON(w, http.StatusNotFound, errorBody{Message: "mesh: no such git session"})
		return
	}
	defer s.dropSession(id)
	w.Header().Set("Trailer", trailerExit+", "+trailerError+", "+trailerErrCode)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	for {
		sess.mu.Lock()
		chunk, done, err := sess.buf, sess.done, sess.err
		sess.buf = nil
		sess.mu.Unlock()
		if len(chunk) > 0 {
			w.Write(chunk)
			rc.Flush()
			continue
		}
		if done {
			code := 0
			if err != nil {
				code = -1
				var ee *ExitError
				if errors.As(err, &ee) {
					code = ee.Code
				}
				if ee == nil || ee.Code < 0 {
					_, body := encodeError(err)
					w.Header().Set(trailerError, body.Message)
					w.Header().Set(trailerErrCode, body.Code)
				}
			}
			w.Header().Set(trailerExit, strconv.Itoa(code))
			return
		}
		select {
		case <-sess.notify:
		case <-r.Context().Done():
			sess.cancel() // the client is gone: stop git
			return
		}
	}
}
