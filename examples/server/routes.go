package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gitfleet/gitfleet/mesh"
)

// routes returns the example's REST API, behind the administrator's HTTP Basic
// credentials (the node serves /status and the mirroring API before it).
func (a *app) routes() http.Handler {
	mux := http.NewServeMux()

	admin := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, a.requireAdmin(h)) }
	admin("POST /rest/api/1.0/projects", a.handleCreateProject)
	admin("GET /rest/api/1.0/projects", a.handleListProjects)
	admin("GET /rest/api/1.0/projects/{key}", a.handleGetProject)
	admin("POST /rest/api/1.0/projects/{key}/repos", a.handleCreateRepo)
	admin("GET /rest/api/1.0/projects/{key}/repos", a.handleListRepos)
	admin("GET /rest/api/1.0/projects/{key}/repos/{slug}", a.handleGetRepo)
	admin("DELETE /rest/api/1.0/projects/{key}/repos/{slug}", a.handleDeleteRepo)
	admin("GET /rest/api/1.0/projects/{key}/repos/{slug}/settings/push", a.handleGetPushSettings)
	admin("PUT /rest/api/1.0/projects/{key}/repos/{slug}/settings/push", a.handleSetPushSettings)
	admin("PUT /rest/api/1.0/projects/{key}/permissions/users", a.handleSetPermission)
	admin("POST /rest/ssh/1.0/keys", a.handleAddUserKey)
	admin("GET /rest/ssh/1.0/keys", a.handleListUserKeys)
	admin("DELETE /rest/ssh/1.0/keys/{id}", a.handleDeleteKey)
	admin("POST /rest/keys/1.0/projects/{key}/repos/{slug}/ssh", a.handleAddAccessKey)
	admin("GET /rest/api/1.0/admin/mesh", a.handleMeshState)
	admin("GET /metrics", a.handleMetrics)
	if a.ui != nil {
		a.ui.register(mux)
	}
	mux.HandleFunc("/rest/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: no such resource: %s %s", errNotFound, r.Method, r.URL.Path))
	})
	return mux
}

// mirrorRoutes is a mirror's part of the REST API: the storage state only (its
// repositories come from the upstream).
func (a *app) mirrorRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /rest/api/1.0/admin/mesh", a.requireAdmin(a.handleMeshState))
	mux.Handle("GET /metrics", a.requireAdmin(a.handleMetrics))
	if a.ui != nil {
		a.ui.register(mux)
	}
	return mux
}

type projectJSON struct {
	Key  string `json:"key"`
	Name string `json:"name"`
}

type linkJSON struct {
	Name string `json:"name"`
	Href string `json:"href"`
}

type repoJSON struct {
	Slug    string                `json:"slug"`
	Name    string                `json:"name"`
	State   string                `json:"state"`
	Project projectJSON           `json:"project"`
	Links   map[string][]linkJSON `json:"links"`
}

// repoView is a repository as the REST API shows it; projectName is its
// project's name (empty when the project cannot be read).
func (a *app) repoView(r repository, projectName string) repoJSON {
	return repoJSON{
		Slug: r.Slug, Name: r.Name, State: "AVAILABLE",
		Project: projectJSON{Key: r.Project, Name: projectName},
		Links:   map[string][]linkJSON{"clone": {{Name: "ssh", Href: a.cloneURL(r.Project, r.Slug)}}},
	}
}

func (a *app) handleCreateProject(w http.ResponseWriter, r *http.Request) {
	var req projectJSON
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	p, err := a.createProject(r.Context(), project{Key: req.Key, Name: req.Name})
	if err != nil {
		writeError(w, err)
		return
	}
	a.log.Info("project created", "project", p.Key)
	writeJSON(w, http.StatusCreated, projectJSON{Key: p.Key, Name: p.Name})
}

func (a *app) handleListProjects(w http.ResponseWriter, r *http.Request) {
	ps, err := a.st.Projects(r.Context())
	out := make([]projectJSON, 0, len(ps))
	for _, p := range ps {
		out = append(out, projectJSON{Key: p.Key, Name: p.Name})
	}
	writePage(w, r, out, err)
}

func (a *app) handleGetProject(w http.ResponseWriter, r *http.Request) {
	p, err := a.st.Project(r.Context(), r.PathValue("key"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, projectJSON{Key: p.Key, Name: p.Name})
}

func (a *app) handleCreateRepo(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	repo, err := a.createRepo(r.Context(), r.PathValue("key"), req.Name)
	if err != nil {
		writeError(w, err)
		return
	}
	a.log.Info("repository created", "project", repo.Project, "slug", repo.Slug)
	writeJSON(w, http.StatusCreated, a.repoView(repo, a.projectName(r.Context(), repo.Project)))
}

func (a *app) handleListRepos(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	p, err := a.st.Project(r.Context(), key)
	if err != nil {
		writeError(w, err)
		return
	}
	rs, err := a.st.Repos(r.Context(), key)
	out := make([]repoJSON, 0, len(rs))
	for _, repo := range rs {
		out = append(out, a.repoView(repo, p.Name))
	}
	writePage(w, r, out, err)
}

func (a *app) handleGetRepo(w http.ResponseWriter, r *http.Request) {
	repo, err := a.st.Repo(r.Context(), r.PathValue("key"), r.PathValue("slug"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.repoView(repo, a.projectName(r.Context(), repo.Project)))
}

// projectName returns the name of project key, or "" when it cannot be read.
func (a *app) projectName(ctx context.Context, key string) string {
	p, err := a.st.Project(ctx, key)
	if err != nil {
		return ""
	}
	return p.Name
}

func (a *app) handleDeleteRepo(w http.ResponseWriter, r *http.Request) {
	key, slug := r.PathValue("key"), r.PathValue("slug")
	if err := a.deleteRepo(r.Context(), key, slug); err != nil {
		writeError(w, err)
		return
	}
	a.log.Info("repository deleted", "project", key, "slug", slug)
	w.WriteHeader(http.StatusNoContent)
}

func (a *app) handleSetPermission(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := a.setPermission(r.Context(), r.PathValue("key"), q.Get("name"), q.Get("permission")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *app) handleAddUserKey(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if err := validUserName(user); err != nil {
		writeError(w, err)
		return
	}
	var req struct {
		Text  string `json:"text"`
		Label string `json:"label"`
	}
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	k, _, err := a.parseKeyText(req.Text)
	if err != nil {
		writeError(w, err)
		return
	}
	if req.Label != "" {
		k.Label = req.Label
	}
	k.User = user
	if k, err = a.st.AddKey(r.Context(), k); err != nil {
		writeError(w, err)
		return
	}
	a.log.Info("ssh key added", "user", user, "fingerprint", k.Fingerprint)
	writeJSON(w, http.StatusCreated, k)
}

func (a *app) handleListUserKeys(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if err := validUserName(user); err != nil {
		writeError(w, err)
		return
	}
	keys, err := a.st.UserKeys(r.Context(), user)
	writePage(w, r, keys, err)
}

func (a *app) handleDeleteKey(w http.ResponseWriter, r *http.Request) {
	if err := a.deleteKey(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *app) handleAddAccessKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key struct {
			Text  string `json:"text"`
			Label string `json:"label"`
		} `json:"key"`
		Permission string `json:"permission"`
	}
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.Permission != permRepoRead && req.Permission != permRepoWrite {
		writeError(w, fmt.Errorf("%w: permission must be REPO_READ or REPO_WRITE, not %q", errBadRequest, req.Permission))
		return
	}
	k, _, err := a.parseKeyText(req.Key.Text)
	if err != nil {
		writeError(w, err)
		return
	}
	if req.Key.Label != "" {
		k.Label = req.Key.Label
	}
	k.Project, k.Slug, k.Permission = r.PathValue("key"), r.PathValue("slug"), req.Permission
	if k, err = a.st.AddKey(r.Context(), k); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"key": k, "permission": k.Permission,
		"repository": map[string]string{"slug": k.Slug, "project": k.Project}})
}

// createRepo creates the repository in the store, then records it. A failure to
// record removes it from the store again, so nothing is half-created; a crash in
// between leaves an unrecorded store repository that startup removes.
func (a *app) createRepo(ctx context.Context, key, name string) (repository, error) {
	slug, err := slugify(name)
	if err != nil {
		return repository{}, err
	}
	repo := repository{Project: key, Slug: slug, Name: strings.TrimSpace(name), Created: a.now().UTC()}
	a.repoMu.Lock()
	defer a.repoMu.Unlock()
	// The store is touched only for a repository that can be recorded; the
	// record is checked again when it is written.
	if _, err := a.st.Project(ctx, key); err != nil {
		return repository{}, err
	}
	if _, err := a.st.Repo(ctx, key, slug); err == nil {
		return repository{}, fmt.Errorf("%w: repository %s/%s already exists", errConflict, key, slug)
	} else if !errors.Is(err, errNotFound) {
		return repository{}, err
	}
	if err := a.repos.Create(ctx, key, slug); err != nil {
		if errors.Is(err, mesh.ErrExists) {
			// Left over from a crash before it was recorded: start it afresh.
			if derr := a.repos.Delete(ctx, key, slug); derr != nil {
				return repository{}, derr
			}
			err = a.repos.Create(ctx, key, slug)
		}
		if err != nil {
			return repository{}, err
		}
	}
	if err := a.st.CreateRepo(ctx, repo); err != nil {
		if derr := a.repos.Delete(context.WithoutCancel(ctx), key, slug); derr != nil {
			a.log.Error("could not remove an unrecorded repository", "project", key, "slug", slug, "err", derr)
		}
		return repository{}, err
	}
	return repo, nil
}

// deleteRepo forgets the repository (and its access keys), then removes it from the
// store.
func (a *app) deleteRepo(ctx context.Context, key, slug string) error {
	a.repoMu.Lock()
	defer a.repoMu.Unlock()
	if err := a.st.DeleteRepo(ctx, key, slug); err != nil {
		return err
	}
	if err := a.repos.Delete(ctx, key, slug); err != nil && !errors.Is(err, mesh.ErrNotFound) {
		return err
	}
	return nil
}
