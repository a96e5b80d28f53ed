package sshserve

import (
	"context"
	"errors"
	"io"

	"github.com/gitfleet/gitfleet"
)

// GitBackend runs git services for the server. It uses only standard-library and
// ground-floor (gitfleet) types, so that a storage package can satisfy it without
// importing sshserve.
//
// The server has already parsed and validated the request and authorized it before
// it calls ServeGit, once per session: the backend receives the parsed request and
// never re-parses the repository path. stdin is the client's stream: it may stay
// open after the service has finished reading (a git client keeps its side open
// until it has the whole response), so ServeGit must return when the service
// exits without waiting for stdin to end; the server closes the stream afterwards,
// which ends any read still blocked on it. ctx ends when the client goes away or
// the server is closed.
type GitBackend interface {
	// ServeGit runs req.Service on req.Repo, with the wire protocol version
	// req.Protocol (see GitRequest.Env), wired to the session's streams. For a
	// repository that does not exist it returns, before writing anything, an
	// error wrapping gitfleet.ErrNotFound: the client then sees NotFoundMessage,
	// the same answer as a refusal. A non-zero exit is returned as an error that
	// has an ExitCode() int method.
	ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error
}

// exitCode returns the exit status to report for the error ServeGit returned: 0
// for nil, the error's ExitCode() when it has a positive one, else 1.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		if c := ec.ExitCode(); c > 0 && c < 256 {
			return c
		}
	}
	return 1
}
