package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/gitfleet/gitfleet"
)

// memoryState keeps the example's state in memory: everything is lost when the
// process ends. It suits tests and programs that keep their state elsewhere, and
// is safe for concurrent use; one mutex makes every method one transaction.
type memoryState struct {
	mu        sync.Mutex
	projects  map[string]project
	repos     map[gitfleet.RepoName]repository
	keys      map[uint64]sshKey
	keyIndex  map[string]uint64 // fingerprint -> id
	lastKeyID uint64
	perms     map[[2]string]string // {project, user} -> permission
	adminUser string
	adminHash []byte
}

// newMemoryState returns an empty state.
func newMemoryState() *memoryState {
	return &memoryState{
		projects: map[string]project{},
		repos:    map[gitfleet.RepoName]repository{},
		keys:     map[uint64]sshKey{},
		keyIndex: map[string]uint64{},
		perms:    map[[2]string]string{},
	}
}

// CreateProject implements state.
func (s *memoryState) CreateProject(ctx context.Context, p project) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[p.Key]; ok {
		return fmt.Errorf("%w: project %s already exists", errConflict, p.Key)
	}
	s.projects[p.Key] = p
	return nil
}

// Project implements state.
func (s *memoryState) Project(ctx context.Context, key string) (project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.projects[key]
	if !ok {
		return project{}, fmt.Errorf("%w: project %s does not exist", errNotFound, key)
	}
	return p, nil
}

// Projects implements state.
func (s *memoryState) Projects(ctx context.Context) ([]project, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []project
	for _, k := range slices.Sorted(maps.Keys(s.projects)) {
		out = append(out, s.projects[k])
	}
	return out, nil
}

// CreateRepo implements state.
func (s *memoryState) CreateRepo(ctx context.Context, r repository) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[r.Project]; !ok {
		return fmt.Errorf("%w: project %s does not exist", errNotFound, r.Project)
	}
	name := gitfleet.RepoName{Project: r.Project, Slug: r.Slug}
	if _, ok := s.repos[name]; ok {
		return fmt.Errorf("%w: repository %s/%s already exists", errConflict, r.Project, r.Slug)
	}
	s.repos[name] = r
	return nil
}

// Repo implements state.
func (s *memoryState) Repo(ctx context.Context, key, slug string) (repository, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.repos[gitfleet.RepoName{Project: key, Slug: slug}]
	if !ok {
		return repository{}, fmt.Errorf("%w: repository %s/%s does not exist", errNotFound, key, slug)
	}
	return r, nil
}

// Repos implements state.
func (s *memoryState) Repos(ctx context.Context, key string) ([]repository, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []repository
	for name, r := range s.repos {
		if key == "" || name.Project == key {
			out = append(out, r)
		}
	}
	sortRepos(out)
	return out, nil
}

// SetRequireSignedPush implements state.
func (s *memoryState) SetRequireSignedPush(ctx context.Context, key, slug string, require bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := gitfleet.RepoName{Project: key, Slug: slug}
	r, ok := s.repos[name]
	if !ok {
		return fmt.Errorf("%w: repository %s/%s does not exist", errNotFound, key, slug)
	}
	r.RequireSignedPush = require
	s.repos[name] = r
	return nil
}

// DeleteRepo implements state.
func (s *memoryState) DeleteRepo(ctx context.Context, key, slug string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := gitfleet.RepoName{Project: key, Slug: slug}
	if _, ok := s.repos[name]; !ok {
		return fmt.Errorf("%w: repository %s/%s does not exist", errNotFound, key, slug)
	}
	for id, k := range s.keys {
		if k.Project == key && k.Slug == slug {
			delete(s.keys, id)
			delete(s.keyIndex, k.Fingerprint)
		}
	}
	delete(s.repos, name)
	return nil
}

// AddKey implements state.
func (s *memoryState) AddKey(ctx context.Context, k sshKey) (sshKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keyIndex[k.Fingerprint]; ok {
		return sshKey{}, fmt.Errorf("%w: this key is already registered (%s)", errConflict, k.Fingerprint)
	}
	if k.Project != "" {
		if _, ok := s.repos[gitfleet.RepoName{Project: k.Project, Slug: k.Slug}]; !ok {
			return sshKey{}, fmt.Errorf("%w: repository %s/%s does not exist", errNotFound, k.Project, k.Slug)
		}
	}
	s.lastKeyID++
	k.ID = s.lastKeyID
	s.keys[k.ID] = k
	s.keyIndex[k.Fingerprint] = k.ID
	return k, nil
}

// KeyByFingerprint implements state.
func (s *memoryState) KeyByFingerprint(ctx context.Context, fingerprint string) (sshKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.keyIndex[fingerprint]
	if !ok {
		return sshKey{}, fmt.Errorf("%w: no key %s", errNotFound, fingerprint)
	}
	return s.keys[id], nil
}

// UserKeys implements state.
func (s *memoryState) UserKeys(ctx context.Context, user string) ([]sshKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sshKey
	for _, k := range s.keys {
		if k.User == user {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b sshKey) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// DeleteKey implements state.
func (s *memoryState) DeleteKey(ctx context.Context, id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok {
		return fmt.Errorf("%w: key %d does not exist", errNotFound, id)
	}
	delete(s.keys, id)
	delete(s.keyIndex, k.Fingerprint)
	return nil
}

// SetPermission implements state.
func (s *memoryState) SetPermission(ctx context.Context, key, user, perm string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.projects[key]; !ok {
		return fmt.Errorf("%w: project %s does not exist", errNotFound, key)
	}
	s.perms[[2]string{key, user}] = perm
	return nil
}

// Permission implements state.
func (s *memoryState) Permission(ctx context.Context, key, user string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perms[[2]string{key, user}], nil
}

// Admin implements state.
func (s *memoryState) Admin(ctx context.Context) (user string, passwordHash []byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.adminUser, bytes.Clone(s.adminHash), nil
}

// SetAdmin implements state.
func (s *memoryState) SetAdmin(ctx context.Context, user string, passwordHash []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adminUser, s.adminHash = user, bytes.Clone(passwordHash)
	return nil
}
