package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/sshserve"
)

// keyringDirName is the GnuPG home, in <home>/shared/config, holding the public
// keys that signed pushes are verified against. The example uses it when it
// exists: `gpg --homedir <home>/shared/config/gnupg --import key.asc`.
const keyringDirName = "gnupg"

// signedPushKeyring returns the keyring directory of a home, or "" when there
// is none.
func signedPushKeyring(home gitfleet.Home) string {
	dir := filepath.Join(home.ConfigDir(), keyringDirName)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dir
	}
	return ""
}

// withKeyring makes the sidecar command verify push certificates against
// keyring (node.RunSidecarCommand's -signed-push-keyring).
func withKeyring(sidecar func() *exec.Cmd, keyring string) func() *exec.Cmd {
	if keyring == "" {
		return sidecar
	}
	return func() *exec.Cmd {
		cmd := sidecar()
		cmd.Args = append(cmd.Args, "-signed-push-keyring", keyring)
		return cmd
	}
}

// gitBackend wraps the node's storage (node.Node.GitBackend): a push to a
// repository whose record says so must be signed
// (gitfleet.GitRequest.RequireSignedPush), which the store enforces.
func (a *app) gitBackend(next sshserve.GitBackend) sshserve.GitBackend {
	return &signedPushPolicy{a: a, next: next}
}

type signedPushPolicy struct {
	a    *app
	next sshserve.GitBackend
}

func (p *signedPushPolicy) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	if req.Service == gitfleet.ReceivePack {
		r, err := p.a.st.Repo(ctx, req.Repo.Project, req.Repo.Slug)
		switch {
		case err == nil:
			req.RequireSignedPush = r.RequireSignedPush
		case errors.Is(err, errNotFound):
			// Not recorded: the storage answers for it (a creation in progress,
			// or one that startup removes).
		default:
			return err // never let a push through unchecked
		}
	}
	return p.next.ServeGit(ctx, req, stdin, stdout, stderr)
}

// logPushes logs every ref change the storage reports, with a push's options
// and the status of its certificate, until ctx ends. a.wg waits for it.
func (a *app) logPushes(ctx context.Context, repos mesh.Repos) error {
	events, err := repos.Subscribe(ctx)
	if err != nil {
		return err
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for ev := range events {
			if ev.Type != mesh.EventRefsChanged {
				continue
			}
			args := []any{"project", ev.Project, "slug", ev.Slug, "refs", len(ev.Updates)}
			if ev.Push != nil {
				if len(ev.Push.Options) > 0 {
					args = append(args, "pushOptions", ev.Push.Options)
				}
				if c := ev.Push.Cert; c != nil {
					args = append(args, "certStatus", c.Status, "certNonceStatus", c.NonceStatus,
						"certVerified", c.Verified(), "certSigner", c.Signer, "certKey", c.Key)
				}
			}
			a.log.Info("refs changed", args...)
		}
	}()
	return nil
}

// pushSettingsJSON is the body of GET and PUT
// /rest/api/1.0/projects/{key}/repos/{slug}/settings/push.
type pushSettingsJSON struct {
	RequireSignedPush *bool `json:"requireSignedPush"`
}

func (a *app) handleGetPushSettings(w http.ResponseWriter, r *http.Request) {
	repo, err := a.st.Repo(r.Context(), r.PathValue("key"), r.PathValue("slug"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pushSettingsJSON{RequireSignedPush: &repo.RequireSignedPush})
}

func (a *app) handleSetPushSettings(w http.ResponseWriter, r *http.Request) {
	var req pushSettingsJSON
	if err := decodeJSON(r, &req); err != nil {
		writeError(w, err)
		return
	}
	if req.RequireSignedPush == nil {
		writeError(w, fmt.Errorf("%w: requireSignedPush (true or false) is required", errBadRequest))
		return
	}
	key, slug := r.PathValue("key"), r.PathValue("slug")
	if err := a.st.SetRequireSignedPush(r.Context(), key, slug, *req.RequireSignedPush); err != nil {
		writeError(w, err)
		return
	}
	a.log.Info("push settings changed", "project", key, "slug", slug, "requireSignedPush", *req.RequireSignedPush)
	writeJSON(w, http.StatusOK, req)
}
