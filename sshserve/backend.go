package sshserve

import (
	"context"
	"errors"
	"io"
)

// GitBackend runs git services for the server. It uses standard-library types
// only, so that a storage package can satisfy it without importing sshserve.
//
// The server has already parsed and validated the repository name and authorized
// the request before it calls ServeGit. stdin is the client's stream: it may stay
// open after the service has finished reading (a git client keeps its side open
// until it has the whole response), so ServeGit must return when the service
// exits without waiting for stdin to end; the server closes the stream afterwards,
// which ends any read still blocked on it. ctx ends when the client goes away or
// the server is closed.
type GitBackend interface {
	// ServeGit runs service ("git-upload-pack", "git-receive-pack" or
	// "git-upload-archive") for repo ("PROJECT/slug"), with extra environment such as
	// "GIT_PROTOCOL=version=2", wired to the session's streams. A non-zero exit is
	// returned as an error that has an ExitCode() int method.
	ServeGit(ctx context.Context, service, repo string, env []string,
		stdin io.Reader, stdout, stderr io.Writer) error
}

// RepoChecker is implemented by backends that can tell whether a repository
// exists (mesh.Repos has this method). When the Backend implements it, the server
// asks it after authorization and answers a missing repository with
// NotFoundMessage, the same answer as a refusal, without calling ServeGit.
type RepoChecker interface {
	Exists(ctx context.Context, project, slug string) (bool, error)
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
