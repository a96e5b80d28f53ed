package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
)

// project is a Bitbucket-style project: a key and a display name.
type project struct {
	Key     string    `json:"key"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// repository is a repository's metadata; its content lives in the mesh store.
type repository struct {
	Project string    `json:"project"`
	Slug    string    `json:"slug"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// RequireSignedPush refuses pushes without a verified push certificate
	// (git push --signed; see gitBackend).
	RequireSignedPush bool `json:"requireSignedPush,omitempty"`
}

// validProjectKey reports whether key is a project key as the API takes it
// (gitfleet.CheckProjectKey), as a bad request when it is not.
func validProjectKey(key string) error {
	if err := gitfleet.CheckProjectKey(key); err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return nil
}

// slugify turns a repository name into its slug (gitfleet.Slugify), as a bad
// request when it gives none.
func slugify(name string) (string, error) {
	s, err := gitfleet.Slugify(name)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return s, nil
}

// sortRepos sorts rs by project and slug.
func sortRepos(rs []repository) {
	slices.SortFunc(rs, func(a, b repository) int {
		return cmp.Or(cmp.Compare(a.Project, b.Project), cmp.Compare(a.Slug, b.Slug))
	})
}

// createProject validates p and stores it as a new project.
func (a *app) createProject(ctx context.Context, p project) (project, error) {
	if err := validProjectKey(p.Key); err != nil {
		return project{}, err
	}
	p.Name = strings.TrimSpace(p.Name)
	if p.Name == "" {
		p.Name = p.Key
	}
	if len(p.Name) > 255 {
		return project{}, fmt.Errorf("%w: project name is longer than 255 characters", errBadRequest)
	}
	p.Created = a.now().UTC()
	if err := a.st.CreateProject(ctx, p); err != nil {
		return project{}, err
	}
	return p, nil
}
