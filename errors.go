package gitfleet

import (
	"errors"
	"io/fs"
)

// ErrInvalidName is wrapped by every error that refuses a project key, a repository
// slug or a repository path; test with errors.Is.
var ErrInvalidName = errors.New("gitfleet: invalid project key or repository slug")

// ErrNotFound is wrapped by every error that reports a repository (or another named
// thing) that does not exist: a storage backend returns it, and sshserve answers it
// with the same message as a refusal. It also matches fs.ErrNotExist, so
// errors.Is(err, fs.ErrNotExist) holds for it too.
var ErrNotFound error = notFound{}

type notFound struct{}

func (notFound) Error() string { return "gitfleet: not found" }

// Is reports that ErrNotFound is an fs.ErrNotExist.
func (notFound) Is(target error) bool { return target == fs.ErrNotExist }

// ErrKeyRejected is wrapped by the errors of KeyPolicy.Check: a public key refused
// for its type or size.
var ErrKeyRejected = errors.New("gitfleet: key refused by policy")
