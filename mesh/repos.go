package mesh

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/gitfleet/gitfleet"
)

// Repos is the one interface for repository storage. The in-process *Store and the
// sidecar's *Client implement it; whoever holds a Repos never touches repository
// files. Repositories are named by project key (upper-case) and slug (lower-case),
// with the ground floor's rules (gitfleet.RepoName).
//
// ServeGit has exactly the signature of sshserve.GitBackend and takes the request
// already parsed (gitfleet.GitRequest), so any Repos can serve Git over SSH without
// mesh importing sshserve, and the repository's existence is checked once, by
// ServeGit itself.
type Repos interface {
	// Create creates an empty bare repository. It fails with ErrExists when the
	// repository already exists and with ErrInvalidName for a bad project or slug.
	Create(ctx context.Context, project, slug string) error
	// Delete removes a repository. It fails with ErrNotFound when there is none.
	Delete(ctx context.Context, project, slug string) error
	// List returns every repository, sorted by project then slug.
	List(ctx context.Context) ([]RepoInfo, error)
	// Exists reports whether the repository exists.
	Exists(ctx context.Context, project, slug string) (bool, error)
	// Refs returns the repository's refs as full ref name -> object id. HEAD and
	// other symbolic refs are not included.
	Refs(ctx context.Context, project, slug string) (map[string]string, error)
	// RefsHash returns hex(SHA-256) over the sorted lines "<id> <ref>\n" of Refs; two
	// repositories with equal hashes hold the same refs.
	RefsHash(ctx context.Context, project, slug string) (string, error)
	// ServeGit runs req.Service on req.Repo with the wire protocol version
	// req.Protocol, wired to the session's streams. A repository that does not
	// exist is an error wrapping ErrNotFound (gitfleet.ErrNotFound), returned
	// before anything is written; a service other than the three git services
	// is ErrUnknownService. A non-zero exit is returned as an error that has an
	// ExitCode() int method.
	ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error
	// Fetch updates the repository (creating it when missing) from a remote, as a
	// mirror does: all refs, pruned, atomically.
	Fetch(ctx context.Context, project, slug string, opts FetchOptions) (FetchResult, error)
	// Subscribe returns a channel of ref-change and repository events, in order per
	// repository. The channel is closed when ctx ends. A subscriber that falls
	// behind, or that reconnects to a restarted sidecar, receives an event of type
	// EventGap and must resync (compare refs hashes) before trusting later events.
	Subscribe(ctx context.Context) (<-chan Event, error)
}

// RepoInfo describes a stored repository.
type RepoInfo struct {
	Project string `json:"project"`
	Slug    string `json:"slug"`
}

// RefUpdate is one ref changed by a transaction. Old is the zero id for a created
// ref and New is the zero id for a deleted one.
type RefUpdate struct {
	Ref string `json:"ref"`
	Old string `json:"old"`
	New string `json:"new"`
}

// ZeroID is the object id git uses for "no object" in ref updates.
const ZeroID = "0000000000000000000000000000000000000000"

// EventType says what an Event reports.
type EventType string

// The event types.
const (
	EventRefsChanged EventType = "refs_changed" // one committed ref transaction
	EventCreated     EventType = "repo_created"
	EventDeleted     EventType = "repo_deleted"
	EventGap         EventType = "gap" // events were missed: resync
)

// Event is a repository change. For EventRefsChanged, Updates is the exact list of
// one committed transaction (one push, fetch or delete), never a merge of several.
//
// Push is set on the EventRefsChanged of a push that carried push options or a
// push certificate (see PushInfo): on each of its events, when git committed its
// refs in several transactions. It is shared by those events and by every
// subscriber: read it, do not modify it.
type Event struct {
	Seq     uint64      `json:"seq"` // increases by one per event within one store
	Type    EventType   `json:"type"`
	Project string      `json:"project,omitempty"`
	Slug    string      `json:"slug,omitempty"`
	Updates []RefUpdate `json:"updates,omitempty"`
	Push    *PushInfo   `json:"push,omitempty"`
	Time    time.Time   `json:"time"`
}

// FetchOptions configures Repos.Fetch.
type FetchOptions struct {
	// URL is the remote, normally ssh://host:port/PROJECT/slug.git.
	URL string `json:"url"`
	// PrivateKey is the SSH private key (OpenSSH or PEM format) to authenticate with.
	PrivateKey []byte `json:"privateKey,omitempty"`
	// KnownHosts holds known_hosts lines pinning the remote's host keys; host-key
	// checking is always strict.
	KnownHosts []byte `json:"knownHosts,omitempty"`
	// Timeout bounds the whole fetch; zero means 10 minutes.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Progress, when set, is called as objects and bytes arrive. It is not sent
	// over the wire; the sidecar client reports progress through it all the same.
	Progress func(FetchProgress) `json:"-"`
	// SkipLFS leaves Git LFS objects alone. Otherwise the fetch brings every LFS
	// object that the blobs of its new commits point to (all reachable ones with
	// LFSAll) and that the repository lacks, from the remote's git-lfs-transfer
	// (or the lfs/objects of a file:// remote), checked against their oids,
	// before any ref changes; when one cannot be had the fetch fails with ErrLFS
	// and changes no ref, so a clone never gets a pointer without its object.
	SkipLFS bool `json:"skipLFS,omitempty"`
	// LFSAll checks the LFS objects of every reachable pointer, not only of the
	// new commits: a repair of what an earlier fetch did not bring.
	LFSAll bool `json:"lfsAll,omitempty"`
}

// FetchProgress reports how far a fetch has come.
type FetchProgress struct {
	Objects      int64 `json:"objects"`      // objects received so far
	TotalObjects int64 `json:"totalObjects"` // objects expected, when git has said
	Bytes        int64 `json:"bytes"`        // bytes received so far
}

// FetchResult reports what a fetch changed.
type FetchResult struct {
	Updates []RefUpdate `json:"updates"` // the ref changes applied, sorted by ref
	Created bool        `json:"created"` // the repository did not exist before
	// LFSObjects is how many Git LFS objects the fetch brought.
	LFSObjects int `json:"lfsObjects,omitempty"`
}

// repoName validates and normalises a project key and slug with the ground floor's
// rules (gitfleet.NewRepoName). The store and the client check the names they are
// given, even those a caller has parsed already, since they become paths under
// the store's root.
func repoName(project, slug string) (string, string, error) {
	r, err := gitfleet.NewRepoName(project, slug)
	return r.Project, r.Slug, err
}

// gitSubcommand maps a service to git's subcommand; any other service is an
// ErrUnknownService.
func gitSubcommand(service gitfleet.Service) (string, error) {
	if _, err := gitfleet.ParseService(string(service)); err != nil {
		return "", fmt.Errorf("%w: %q", ErrUnknownService, service)
	}
	return service.Subcommand(), nil
}
