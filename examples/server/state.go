package main

import (
	"context"
	"errors"
)

// The errors of the example's state and of its REST API. A state method's error
// wraps one of them when the caller may act on it; writeError maps them to
// 400, 404 and 409.
var (
	errNotFound   = errors.New("not found")
	errConflict   = errors.New("conflict")
	errBadRequest = errors.New("bad request")
)

// state is where the example keeps what must survive a restart: its projects,
// the records of its repositories (their content lives in the node's storage),
// users' SSH keys and repository access keys, project permissions and the
// administrator's settings. newBoltState is the default implementation, in the
// node's bbolt database; newMemoryState keeps nothing across restarts.
//
// Each method is one transaction: a write is applied whole or not at all, and
// the rules it checks (a project must exist, a fingerprint is registered once)
// are checked inside that transaction. Records returned are the caller's to
// keep. The methods are called from several goroutines at once. The app
// validates what it stores (names, keys, permissions) before it calls them.
type state interface {
	projectState
	repoState
	keyState
	permissionState
	settingsState
}

// projectState keeps the projects.
type projectState interface {
	// CreateProject stores p, a new project. It stores nothing and returns an
	// error wrapping errConflict when a project with p.Key exists.
	CreateProject(ctx context.Context, p project) error
	// Project returns project key, or an error wrapping errNotFound.
	Project(ctx context.Context, key string) (project, error)
	// Projects returns every project, ordered by key.
	Projects(ctx context.Context) ([]project, error)
}

// repoState keeps the records of the repositories.
type repoState interface {
	// CreateRepo records r. It records nothing and returns an error wrapping
	// errNotFound when project r.Project does not exist, or errConflict when
	// r.Project/r.Slug is recorded already.
	CreateRepo(ctx context.Context, r repository) error
	// Repo returns the record of key/slug, or an error wrapping errNotFound.
	Repo(ctx context.Context, key, slug string) (repository, error)
	// Repos returns the records of project key's repositories, or of every
	// repository when key is empty, ordered by project and slug.
	Repos(ctx context.Context, key string) ([]repository, error)
	// DeleteRepo forgets key/slug and its access keys. It returns an error
	// wrapping errNotFound when key/slug is not recorded.
	DeleteRepo(ctx context.Context, key, slug string) error
	// SetRequireSignedPush sets whether pushes to key/slug must be signed
	// (repository.RequireSignedPush). It returns an error wrapping errNotFound
	// when key/slug is not recorded.
	SetRequireSignedPush(ctx context.Context, key, slug string, require bool) error
}

// keyState keeps users' SSH keys and repository access keys. A key, by its
// fingerprint, is registered at most once across the node.
type keyState interface {
	// AddKey stores k with a new id (k.ID is ignored) and returns it as
	// stored. It stores nothing and returns an error wrapping errConflict when
	// a key with k.Fingerprint is registered (to any user or repository), or,
	// for an access key (k.Project set), errNotFound when its repository is
	// not recorded.
	AddKey(ctx context.Context, k sshKey) (sshKey, error)
	// KeyByFingerprint returns the key with that SHA256 fingerprint, or an
	// error wrapping errNotFound.
	KeyByFingerprint(ctx context.Context, fingerprint string) (sshKey, error)
	// UserKeys returns the keys of user, ordered by id.
	UserKeys(ctx context.Context, user string) ([]sshKey, error)
	// DeleteKey removes key id and frees its fingerprint. It returns an error
	// wrapping errNotFound when there is no key id.
	DeleteKey(ctx context.Context, id uint64) error
}

// permissionState keeps the users' project permissions.
type permissionState interface {
	// SetPermission grants user perm on project key, replacing what they had.
	// It stores nothing and returns an error wrapping errNotFound when the
	// project does not exist.
	SetPermission(ctx context.Context, key, user, perm string) error
	// Permission returns user's permission on project key; "" when none.
	Permission(ctx context.Context, key, user string) (string, error)
}

// settingsState keeps the administrator's settings.
type settingsState interface {
	// Admin returns the administrator's user name and bcrypt password hash;
	// both empty before SetAdmin.
	Admin(ctx context.Context) (user string, passwordHash []byte, err error)
	// SetAdmin stores the administrator's user name and bcrypt password hash.
	SetAdmin(ctx context.Context, user string, passwordHash []byte) error
}
