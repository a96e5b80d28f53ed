package mesh

import (
	"errors"

	"github.com/gitfleet/gitfleet"
)

// Errors returned by Repos implementations; test with errors.Is. ErrInvalidName and
// ErrNotFound are the ground floor's sentinels (gitfleet.ErrInvalidName and
// gitfleet.ErrNotFound), so either spelling matches.
var (
	ErrInvalidName = gitfleet.ErrInvalidName
	ErrExists      = errors.New("mesh: repository already exists")
	ErrNotFound    = gitfleet.ErrNotFound
	ErrClosed      = errors.New("mesh: closed")
)

// ErrUnknownService is returned by ServeGit for a service other than
// git-upload-pack, git-receive-pack and git-upload-archive.
var ErrUnknownService = errors.New("mesh: unknown git service")

// ErrFetch wraps every failure of the remote side of a Fetch: connection, host key,
// authentication, a missing remote repository, a timeout.
var ErrFetch = errors.New("mesh: fetch failed")

// ErrHostKey is wrapped, with ErrFetch, when a Fetch's remote presents a host key
// that the pinned known_hosts does not hold.
var ErrHostKey = errors.New("mesh: remote host key is not trusted")

// ErrSupervisorUnsupported is returned by Supervisor.Start on Windows, where a
// child process cannot inherit the descriptors KeyFD and ReadyFD (os/exec has no
// ExtraFiles there). A program on Windows runs the Store in its own process.
var ErrSupervisorUnsupported = errors.New("mesh: the sidecar Supervisor is not supported on windows (it hands the child inherited descriptors); run the Store in-process")
