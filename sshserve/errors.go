package sshserve

import (
	"errors"

	"github.com/gitfleet/gitfleet"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown or Close.
var ErrServerClosed = errors.New("sshserve: Server closed")

// ErrDenied is what an Authorizer returns to refuse access without saying why. The
// client sees the same message as for a repository that does not exist, so that a
// refusal does not reveal whether the repository exists.
var ErrDenied = errors.New("sshserve: access denied")

// ErrNotFound is what an Authorizer (or a GitBackend) returns, or wraps, for a
// repository that does not exist. The client sees the same message as for
// ErrDenied. It is gitfleet.ErrNotFound, so either spelling matches with errors.Is.
var ErrNotFound = gitfleet.ErrNotFound

// Errors returned by ParseCommand; test with errors.Is.
var (
	ErrUnknownCommand = errors.New("sshserve: unknown command")
	ErrBadQuoting     = errors.New("sshserve: badly quoted argument")
	// ErrBadRepoPath is gitfleet.ErrInvalidName: a missing or invalid repository
	// path.
	ErrBadRepoPath = gitfleet.ErrInvalidName
)

// NotFoundMessage is what a client sees on stderr when a repository is missing or
// access to it is refused.
const NotFoundMessage = "Repository not found\nThe requested repository does not exist, or you do not have permission to access it.\n"

// DeniedError refuses a request with a message of the caller's choosing, which the
// client sees on stderr (followed by a newline) before the session ends with exit
// status 1. An Authorizer returns it when a plain "not found" would mislead, for
// example a mirror refusing a push and naming the upstream clone URL instead.
type DeniedError struct {
	Message string // shown to the client as is; keep it to a line or two
}

func (e *DeniedError) Error() string { return "sshserve: denied: " + e.Message }

// Is reports that a DeniedError is an ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }
