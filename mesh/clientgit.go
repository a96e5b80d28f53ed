package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet"
)

// ServeGit runs a git service in the sidecar, wired to the caller's streams: stdin
// and stdout travel as raw bytes over an upgraded connection (full duplex; the end
// of stdin is passed on as a half-close), stderr and the exit status over a second
// request, made on the client's pool of keep-alive connections. A repository that
// does not exist costs the one request, which the sidecar answers before
// upgrading: the error wraps ErrNotFound (gitfleet.ErrNotFound) and nothing is
// written. A non-zero exit is returned as *ExitError. If the sidecar dies
// mid-stream the call fails promptly with an *ExitError (code -1) wrapping
// ErrUnavailable; when ctx ends, the service is stopped.
func (c *Client) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	service := req.Service
	if _, err := gitSubcommand(service); err != nil {
		return err
	}
	project, slug, err := repoName(req.Repo.Project, req.Repo.Slug)
	if err != nil {
		return err
	}
	if stderr == nil {
		stderr = io.Discard
	}
	addr := c.Addr()
	conn, err := c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return unavailable(ctx, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// The X-Gitfleet-* headers, which the token binds.
	bound := http.Header{}
	bound.Set(hdrService, string(service))
	bound.Set(hdrRepo, project+"/"+slug)
	if req.Protocol == 1 || req.Protocol == 2 {
		bound.Set(hdrProtocol, fmt.Sprintf("version=%d", req.Protocol))
	}
	if req.RequireSignedPush {
		bound.Set(hdrSignedPush, "1")
	}
	if req.LFSOperation != "" {
		bound.Set(hdrLFSOp, req.LFSOperation)
	}
	if req.User != "" {
		bound.Set(hdrUser, req.User)
	}
	var head strings.Builder
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s%s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n",
		pathGit, addr, authScheme, makeToken(c.key, http.MethodPost, pathGit, requestBinding("", nil, bound), time.Now()), upgradeProto)
	bound.Write(&head)
	head.WriteString("Content-Length: 0\r\n\r\n")
	conn.SetDeadline(time.Now().Add(c.callTimeout))
	if _, err := io.WriteString(conn, head.String()); err != nil {
		return unavailable(ctx, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return unavailable(ctx, err)
	}
	conn.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		return decodeResponse(resp, nil)
	}
	id := resp.Header.Get(hdrSession)

	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	type result struct {
		code int
		err  error
	}
	resultc := make(chan result, 1)
	// The service's output is passed on only once the sidecar has answered the
	// result request (it sends the response header at once), so that a sidecar
	// shutting down (which refuses new requests but lets running ones finish) never
	// strands a service whose result was not asked for. Having written the request
	// is not enough: a pooled connection that the server has not yet read from
	// counts as idle, Shutdown closes it, and the transport's retry of the GET then
	// finds the listener closed.
	sent := make(chan struct{})
	var sentOnce sync.Once
	markSent := func() { sentOnce.Do(func() { close(sent) }) }
	tctx := httptrace.WithClientTrace(rctx, &httptrace.ClientTrace{
		GotFirstResponseByte: markSent,
	})
	go func() {
		code, err := c.gitResult(tctx, id, stderr)
		markSent()
		resultc <- result{code, err}
	}()
	<-sent
	inDone := make(chan struct{})
	if stdin != nil {
		go func() {
			defer close(inDone)
			io.Copy(conn, stdin)
			if tc, ok := conn.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
		}()
	} else {
		close(inDone)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}
	var copyErr error
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		if _, copyErr = stdout.Write(b); copyErr == nil {
			br.Discard(n)
		}
	}
	if copyErr == nil {
		_, copyErr = io.Copy(stdout, conn) // spliced when stdout is a socket or pipe
	}
	if copyErr != nil {
		rcancel() // the caller's side is gone: stop the service
	}
	res := <-resultc
	conn.Close()
	waitStdin(ctx, stdin, inDone)

	switch {
	case ctx.Err() != nil:
		return &ExitError{Service: service, Code: -1, Err: ctx.Err()}
	case res.err != nil:
		return &ExitError{Service: service, Code: -1, Err: res.err}
	case copyErr != nil:
		return &ExitError{Service: service, Code: -1, Err: copyErr}
	case res.code != 0:
		return &ExitError{Service: service, Code: res.code}
	}
	return nil
}

// gitResult streams a session's stderr to stderr and returns its exit status.
func (c *Client) gitResult(ctx context.Context, id string, stderr io.Writer) (int, error) {
	req, err := c.newRequest(ctx, http.MethodGet, pathGitResult, url.Values{"session": {id}}, nil)
	if err != nil {
		return -1, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return -1, unavailable(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1, decodeResponse(resp, nil)
	}
	if _, err := io.Copy(stderr, resp.Body); err != nil {
		return -1, unavailable(ctx, err)
	}
	if msg := resp.Trailer.Get(trailerError); msg != "" {
		return -1, decodeError(errorBody{Message: msg, Code: resp.Trailer.Get(trailerErrCode)})
	}
	code, err := strconv.Atoi(resp.Trailer.Get(trailerExit))
	if err != nil {
		return -1, unavailable(ctx, errors.New("git session ended without an exit status"))
	}
	return code, nil
}
