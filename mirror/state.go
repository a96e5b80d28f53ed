package mirror

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/gitfleet/gitfleet"
)

// MirrorState is where a mirror keeps what must survive a restart: its identity
// and setup, its registration (with the upstream's SSH host keys pinned at
// acceptance), the change-feed cursor and each repository's last sync. Config.State
// takes it; NewBoltState is the default implementation and NewMemoryState one that
// keeps nothing across restarts.
//
// Each method is one transaction: a write is applied whole or not at all. The
// methods are called from several goroutines at once.
type MirrorState interface {
	// Identity returns the identity stored at the mirror's first start, or an
	// error wrapping gitfleet.ErrNotFound before it.
	Identity(ctx context.Context) (Identity, error)
	// SetIdentity stores the identity at the first start.
	SetIdentity(ctx context.Context, id Identity) error
	// Registration returns what the mirror knows of its registration; the zero
	// Registration when nothing was stored.
	Registration(ctx context.Context) (Registration, error)
	// SetRegistration replaces the stored registration.
	SetRegistration(ctx context.Context, r Registration) error
	// Cursor returns the change-feed cursor; zero when none was stored.
	Cursor(ctx context.Context) (uint64, error)
	// SetCursor stores the change-feed cursor.
	SetCursor(ctx context.Context, cursor uint64) error
	// RepoSyncs returns when each repository last matched the upstream.
	RepoSyncs(ctx context.Context) (map[gitfleet.RepoName]time.Time, error)
	// SetRepoSync records that repo matched the upstream at at.
	SetRepoSync(ctx context.Context, repo gitfleet.RepoName, at time.Time) error
	// DeleteRepoSync forgets repo; forgetting an unknown repository is not an
	// error.
	DeleteRepoSync(ctx context.Context, repo gitfleet.RepoName) error
}

// Identity is what a mirror stores at its first start.
type Identity struct {
	// ID is the mirror's id, a UUID generated at the first start.
	ID string `json:"id"`
	// Setup is the setup applied at the first start.
	Setup SetupConfig `json:"setup"`
	// PublicKey is the mirror key set up at the first start, as one
	// authorized_keys line; later starts must bring the same key. Empty in a
	// state written before it was recorded: any key is then taken.
	PublicKey string `json:"publicKey,omitempty"`
	// Created is when the mirror was set up.
	Created time.Time `json:"created"`
}

// Registration is what a mirror knows of its registration with the upstream.
type Registration struct {
	// Registered is set once the upstream answered the registration.
	Registered bool `json:"registered"`
	// State is the registration state; empty means StateUnregistered.
	State State `json:"state"`
	// Mode and Projects are what the upstream grants an accepted mirror.
	Mode     Mode     `json:"mode,omitempty"`
	Projects []string `json:"projects,omitempty"`
	// SSHBaseURL is where the mirror fetches from.
	SSHBaseURL string `json:"sshBaseUrl,omitempty"`
	// HostKeys are the upstream's SSH host keys pinned at acceptance
	// (authorized_keys lines, sorted).
	HostKeys []string `json:"hostKeys,omitempty"`
	// KeyChanged holds the host keys the upstream offered instead of the pinned
	// ones; sync stops while it is set.
	KeyChanged []string `json:"keyChanged,omitempty"`
}

// clone returns a copy of r that shares no slices with it.
func (r Registration) clone() Registration {
	r.Projects, r.HostKeys, r.KeyChanged = slices.Clone(r.Projects), slices.Clone(r.HostKeys), slices.Clone(r.KeyChanged)
	return r
}

// UpstreamState is where an Upstream keeps what must survive a restart: mirror
// registrations with the administrators' decisions and project selections, the
// removed mirrors (whose ids never register again), recent request nonces, and
// the change feed's sequence number. UpstreamConfig.State takes it;
// NewBoltState is the default implementation and NewMemoryState one that keeps
// nothing across restarts.
//
// Each method is one transaction: a write is applied whole or not at all, and
// UpdateMirror's change runs inside it. Records returned are the caller's to
// keep. The methods are called from several goroutines at once.
type UpstreamState interface {
	// Mirror returns the record of mirror id: the live one, or else the record of
	// a removed mirror with removed set. An unknown id is an error wrapping
	// gitfleet.ErrNotFound.
	Mirror(ctx context.Context, id string) (rec *MirrorRecord, removed bool, err error)
	// MirrorByKey returns the live record whose key has the given SHA256
	// fingerprint (ssh.FingerprintSHA256), or an error wrapping
	// gitfleet.ErrNotFound.
	MirrorByKey(ctx context.Context, fingerprint string) (*MirrorRecord, error)
	// Mirrors returns every live record, ordered by id.
	Mirrors(ctx context.Context) ([]*MirrorRecord, error)
	// AddMirror stores rec, a new registration. It stores nothing and returns
	// ErrMirrorRemoved when rec.ID was removed, the live record and
	// ErrMirrorExists when rec.ID is registered, and ErrKeyInUse when another
	// mirror holds rec.Fingerprint.
	AddMirror(ctx context.Context, rec *MirrorRecord) (*MirrorRecord, error)
	// UpdateMirror calls change with the live record of id and stores what it
	// leaves, in one transaction, returning the stored record. When change
	// returns an error nothing is stored and that error is returned. An unknown
	// id is an error wrapping gitfleet.ErrNotFound.
	UpdateMirror(ctx context.Context, id string, change func(rec *MirrorRecord) error) (*MirrorRecord, error)
	// RemoveMirror moves the live record of id to the removed records, with
	// Updated set to at, and frees its key; it returns the removed record. An
	// unknown id is an error wrapping gitfleet.ErrNotFound.
	RemoveMirror(ctx context.Context, id string, at time.Time) (*MirrorRecord, error)
	// UseNonce records that mirror id used nonce in a request stamped timestamp
	// (unix seconds), and returns ErrReplay when it was recorded before. It may
	// forget nonces stamped before pruneBefore: requests that old are refused
	// by their timestamp alone.
	UseNonce(ctx context.Context, id string, timestamp int64, nonce string, pruneBefore int64) error
	// FeedSeq returns the change feed's last sequence number; zero when none was
	// stored.
	FeedSeq(ctx context.Context) (uint64, error)
	// SetFeedSeq stores the change feed's last sequence number.
	SetFeedSeq(ctx context.Context, seq uint64) error
	// PurgeRemoved forgets the removed records last updated before before and
	// returns how many it forgot; their ids may then register again.
	PurgeRemoved(ctx context.Context, before time.Time) (int, error)
}

// The errors of UpstreamState.AddMirror.
var (
	ErrMirrorRemoved = errors.New("mirror: the mirror id was removed")
	ErrMirrorExists  = errors.New("mirror: the mirror id is registered")
	ErrKeyInUse      = errors.New("mirror: the key is registered by another mirror")
)

// MirrorRecord is what the upstream stores about one mirror.
type MirrorRecord struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	BaseURL     string    `json:"baseUrl"`
	PublicKey   string    `json:"publicKey"`   // one authorized_keys line
	Fingerprint string    `json:"fingerprint"` // ssh.FingerprintSHA256 of the key
	State       State     `json:"state"`
	Mode        Mode      `json:"mode,omitempty"`
	Projects    []string  `json:"projects,omitempty"` // sorted
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	// Farm, for a node that joined a farm with a join token, is the id of the
	// farm's first mirror, whose mode and projects it follows.
	Farm string `json:"farm,omitempty"`
	// JoinTokenHash and JoinTokenExpires hold the SHA-256 of the farm's join
	// token (see Upstream's POST /mirrorServers/{id}/join-token) and its end.
	JoinTokenHash    string    `json:"joinTokenHash,omitempty"`
	JoinTokenExpires time.Time `json:"joinTokenExpires,omitempty"`
	// From is the address the registration came from, for the bound on
	// pending registrations per address.
	From string `json:"from,omitempty"`
}

// clone returns a copy of r that shares no slice with it.
func (r *MirrorRecord) clone() *MirrorRecord {
	c := *r
	c.Projects = slices.Clone(r.Projects)
	return &c
}

// view returns the administrator's view of the record.
func (r *MirrorRecord) view() MirrorServer {
	return MirrorServer{ID: r.ID, Name: r.Name, BaseURL: r.BaseURL, State: r.State,
		MirroringMode: r.Mode, Projects: slices.Clone(r.Projects), PublicKey: r.PublicKey, Farm: r.Farm,
		Fingerprint: r.Fingerprint, Created: r.Created}
}

// canRead reports whether the record grants read access to project.
func (r *MirrorRecord) canRead(project string) bool {
	if r.State != StateAccepted {
		return false
	}
	if r.Mode == ModeAllProjects {
		return true
	}
	_, found := slices.BinarySearch(r.Projects, project)
	return found
}

// isNotFound reports whether err says that something does not exist.
func isNotFound(err error) bool { return errors.Is(err, gitfleet.ErrNotFound) }
