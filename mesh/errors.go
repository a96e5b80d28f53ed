package mesh

import "errors"

// Errors returned by Repos implementations; test with errors.Is.
var (
	ErrInvalidName = errors.New("mesh: invalid project key or repository slug")
	ErrExists      = errors.New("mesh: repository already exists")
	ErrNotFound    = errors.New("mesh: repository not found")
	ErrClosed      = errors.New("mesh: closed")
)

// ErrUnknownService is returned by ServeGit for a service other than
// git-upload-pack, git-receive-pack and git-upload-archive.
var ErrUnknownService = errors.New("mesh: unknown git service")
