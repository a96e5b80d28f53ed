package gitfleet

import (
	"fmt"
	"strings"
)

// Service is a git service a client can run on a repository.
type Service string

// The services gitfleet serves.
const (
	UploadPack    Service = "git-upload-pack"    // clone, fetch, ls-remote
	ReceivePack   Service = "git-receive-pack"   // push
	UploadArchive Service = "git-upload-archive" // git archive --remote
	// LFSTransfer is Git LFS's transfer protocol over SSH (git-lfs 3.0 and
	// later, "git-lfs-transfer <repo> upload|download"): large objects and file
	// locks of a repository. GitRequest.LFSOperation says which.
	LFSTransfer Service = "git-lfs-transfer"
)

// The operations of LFSTransfer, as the client names them.
const (
	LFSUpload   = "upload"   // push objects, take and release locks: needs write access
	LFSDownload = "download" // fetch objects, list locks: needs read access
)

// ParseService accepts a service in its dashed spelling ("git-upload-pack") and
// returns it; any other name is an error.
func ParseService(name string) (Service, error) {
	switch s := Service(name); s {
	case UploadPack, ReceivePack, UploadArchive, LFSTransfer:
		return s, nil
	}
	return "", fmt.Errorf("gitfleet: unknown git service %q", printable(name))
}

// Writes reports whether the service changes the repository (receive-pack).
// Whether an LFSTransfer writes depends on its operation: see GitRequest.Writes.
func (s Service) Writes() bool { return s == ReceivePack }

// Subcommand returns the git subcommand that runs the service ("upload-pack").
func (s Service) Subcommand() string { return strings.TrimPrefix(string(s), "git-") }

// GitRequest is one parsed request to run a git service, as a transport (the SSH
// server) hands it to storage. It is parsed once, where the request enters, and
// travels as is: a storage backend never re-parses the repository name.
type GitRequest struct {
	// Service is the git service to run.
	Service Service
	// Repo is the repository, already validated and normalised.
	Repo RepoName
	// Protocol is the wire protocol version the client asked for with
	// GIT_PROTOCOL: 0 (also when it asked for none), 1 or 2.
	Protocol int
	// RequireSignedPush, for a push (ReceivePack), makes storage refuse it,
	// before anything is written and with a message to the client, unless it
	// carries a push certificate (git push --signed) whose signature is good
	// and whose nonce is the server's. A transport never sets it from what the
	// client sends: the embedding program sets it from its own policy, for
	// example in a GitBackend that wraps the storage.
	RequireSignedPush bool
	// LFSOperation, for LFSTransfer, is LFSUpload or LFSDownload.
	LFSOperation string
	// User is the name of the authenticated principal, for services that record
	// who acted (Git LFS file locks, which name their owner); empty when the
	// transport has none.
	User string
}

// Writes reports whether the request may change the repository: a push, or a
// Git LFS upload (which also takes and releases file locks).
func (r GitRequest) Writes() bool {
	return r.Service.Writes() || (r.Service == LFSTransfer && r.LFSOperation == LFSUpload)
}

// Env returns the environment a git process needs for the request: GIT_PROTOCOL
// when the client asked for version 1 or 2, else nothing.
func (r GitRequest) Env() []string {
	if r.Protocol > 0 {
		return []string{fmt.Sprintf("GIT_PROTOCOL=version=%d", r.Protocol)}
	}
	return nil
}

// ParseProtocol parses the value of GIT_PROTOCOL as a client sends it. Only
// "version=0", "version=1" and "version=2" are accepted (nothing else reaches git);
// the result is the version.
func ParseProtocol(value string) (int, error) {
	switch value {
	case "version=0":
		return 0, nil
	case "version=1":
		return 1, nil
	case "version=2":
		return 2, nil
	}
	return 0, fmt.Errorf("gitfleet: GIT_PROTOCOL %q: want version=0, version=1 or version=2", printable(value))
}
