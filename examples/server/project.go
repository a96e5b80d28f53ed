package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
	bolt "go.etcd.io/bbolt"
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

func repoKey(projectKey, slug string) []byte { return []byte(projectKey + "/" + slug) }

func (a *app) createProject(p project) (project, error) {
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
	err := a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProjects)
		if b.Get([]byte(p.Key)) != nil {
			return fmt.Errorf("%w: project %s already exists", errConflict, p.Key)
		}
		return putJSON(b, []byte(p.Key), p)
	})
	return p, err
}

func (a *app) getProject(key string) (project, error) {
	var p project
	err := a.db.View(func(tx *bolt.Tx) error { return getJSON(tx.Bucket(bucketProjects), []byte(key), &p) })
	if err != nil {
		return p, fmt.Errorf("%w: project %s does not exist", errNotFound, key)
	}
	return p, nil
}

func (a *app) listProjects() ([]project, error) {
	var out []project
	err := a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProjects).ForEach(func(k, v []byte) error {
			var p project
			if err := getJSON(tx.Bucket(bucketProjects), k, &p); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// listRepos returns the repositories of project key, or of every project when key
// is empty, sorted by project and slug.
func (a *app) listRepos(key string) ([]repository, error) {
	var out []repository
	err := a.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRepos).Cursor()
		prefix := []byte(key + "/")
		if key == "" {
			prefix = nil
		}
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			var r repository
			if err := jsonUnmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Project != out[j].Project {
			return out[i].Project < out[j].Project
		}
		return out[i].Slug < out[j].Slug
	})
	return out, err
}

func (a *app) getRepo(key, slug string) (repository, error) {
	var r repository
	err := a.db.View(func(tx *bolt.Tx) error { return getJSON(tx.Bucket(bucketRepos), repoKey(key, slug), &r) })
	if err != nil {
		return r, fmt.Errorf("%w: repository %s/%s does not exist", errNotFound, key, slug)
	}
	return r, nil
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}
