package mesh

import "errors"

// Errors returned by Repos implementations; test with errors.Is.
var (
	ErrInvalidName = errors.New("mesh: invalid project key or repository slug")
	ErrExists      = errors.New("mesh: repository already exists")
	ErrNotFound    = errors.New("mesh: repository not found")
	ErrClosed      = errors.New("mesh: closed")
)
