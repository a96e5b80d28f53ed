package mesh

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ServeGit runs a git service in the sidecar, wired to the caller's streams: stdin
// and stdout travel as raw bytes over an upgraded connection (full duplex; the end
// of stdin is passed on as a half-close), stderr and the exit status over a second
// request. A non-zero exit is returned as *ExitError. If the sidecar dies
// mid-stream the call fails promptly with an *ExitError (code -1) wrapping
// ErrUnavailable; when ctx ends, the service is stopped.
func (c *Client) ServeGit(ctx context.Context, service, repo string, env []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if _, err := gitSubcommand(service); err != nil {
		return err
	}
	project, slug, err := ParseRepoPath(repo)
	if err != nil {
		return err
	}
	proto := ""
	if e := gitProtocolEnv(env); len(e) == 1 {
		proto = strings.TrimPrefix(e[0], "GIT_PROTOCOL=")
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

	var req strings.Builder
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s%s\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s: %s\r\n%s: %s/%s\r\n",
		pathGit, addr, authScheme, makeToken(c.key, http.MethodPost, pathGit, time.Now()), upgradeProto, hdrService, service, hdrRepo, project, slug)
	if proto != "" {
		fmt.Fprintf(&req, "%s: %s\r\n", hdrProtocol, proto)
	}
	req.WriteString("Content-Length: 0\r\n\r\n")
	conn.SetDeadline(time.Now().Add(c.callTimeout))
	if _, err := io.WriteString(conn, req.String()); err != nil {
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
	go func() {
		code, err := c.gitResult(rctx, id, stderr)
		resultc <- result{code, err}
	}()
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
	req, err := c.newRequest(ctx, http.MethodGet, pathGitResult, nil)
	if err != nil {
		return -1, err
	}
	req.URL.RawQuery = url.Values{"session": {id}}.Encode()
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

// waitStdin waits for a goroutine copying from stdin to end, interrupting its read
// through SetReadDeadline when stdin has it; otherwise it gives the read stdinGrace
// (or until ctx ends), after which the goroutine ends when the caller closes stdin.
func waitStdin(ctx context.Context, stdin io.Reader, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	if d, ok := stdin.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
		<-done
		d.SetReadDeadline(time.Time{})
		return
	}
	t := time.NewTimer(stdinGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}
