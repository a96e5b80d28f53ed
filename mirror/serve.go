package mirror

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// ConfigureServer makes srv serve the mirror's repositories read-only, composing
// with what srv already has: its PublicKeyCallback and Authorizer are wrapped
// with Mirror.PublicKeyCallback and Mirror.Authorizer, and its Backend (when nil,
// Config.Repos) goes behind the freshness check (Mirror.GitBackend). Call it
// once, before srv serves.
func (m *Mirror) ConfigureServer(srv *sshserve.Server) {
	if srv.Backend == nil && m.cfg.Repos != nil {
		srv.Backend = m.cfg.Repos
	}
	if srv.Backend != nil {
		srv.Backend = m.GitBackend(srv.Backend)
	}
	srv.PublicKeyCallback = m.PublicKeyCallback(srv.PublicKeyCallback)
	srv.Authorizer = m.Authorizer(srv.Authorizer)
}

// PublicKeyCallback wraps next with the mirror's key lookup: any key the
// server's key policy accepts may connect, because the upstream decides each
// read. A key that next (when not nil) maps to a principal keeps that principal,
// so that an embedder can name keys of its own; any other key connects as a
// principal named by its SHA256 fingerprint.
func (m *Mirror) PublicKeyCallback(next sshserve.PublicKeyCallback) sshserve.PublicKeyCallback {
	return func(ctx context.Context, conn sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
		if next != nil {
			if p, err := next(ctx, conn, key); err == nil {
				return p, nil
			}
		}
		fp := ssh.FingerprintSHA256(key)
		return sshserve.Principal{Name: fp, ID: fp}, nil
	}
}

// Authorizer wraps next with the mirror's policy, which decides first:
// repositories outside the mirror's projects, and every repository while the
// mirror is not accepted, are not found; a push is refused with a message
// naming the upstream's clone URL; a read is asked of the upstream (MayRead)
// with the principal's key, and cached. What the mirror allows, next (when not
// nil) may still refuse; nil next means the mirror's policy alone.
func (m *Mirror) Authorizer(next sshserve.Authorizer) sshserve.Authorizer {
	return func(ctx context.Context, conn sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
		if err := m.authorize(ctx, p, project, slug, access); err != nil {
			return err
		}
		if next != nil {
			return next(ctx, conn, p, project, slug, access)
		}
		return nil
	}
}

// authorize is the mirror's own policy.
func (m *Mirror) authorize(ctx context.Context, p sshserve.Principal, project, slug string, access sshserve.Access) error {
	reg := m.registration()
	if reg.State != StateAccepted {
		return sshserve.ErrNotFound
	}
	if reg.Mode != ModeAllProjects && !slices.Contains(reg.Projects, project) {
		return sshserve.ErrNotFound
	}
	if access != sshserve.AccessRead {
		return &sshserve.DeniedError{Message: "This is a read-only mirror of " + m.ident.Setup.UpstreamURL +
			". Push to the upstream instead: git remote set-url --push origin " + m.fetchURL(project, slug)}
	}
	if p.Key == nil {
		return sshserve.ErrDenied
	}
	allowed, err := m.MayRead(ctx, p.Key, project, slug)
	if err != nil {
		m.log.Warn("read check failed", "repo", project+"/"+slug, "key", p.Name, "err", err)
		return sshserve.ErrDenied
	}
	if !allowed {
		return sshserve.ErrDenied
	}
	return nil
}

// ErrAuthUnavailable is returned by MayRead when the upstream cannot answer and no
// usable cached answer exists.
var ErrAuthUnavailable = errors.New("mirror: the upstream cannot be asked about access and no cached answer is usable")

// MayRead reports whether the user owning key may read project/slug, asking the
// upstream and caching its answer: "allowed" for AuthCache.Allowed, "denied" for
// AuthCache.Denied. While the upstream is unreachable a cached answer keeps
// serving up to AuthCache.Stale past its expiry.
func (m *Mirror) MayRead(ctx context.Context, key ssh.PublicKey, project, slug string) (bool, error) {
	line := authorizedLine(key)
	ck := line + "\x00" + project + "/" + slug
	now := m.now()
	cached, ok := m.auth.get(ck)
	if ok && now.Before(cached.expires) {
		return cached.allowed, nil
	}
	var reply AuthReply
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := m.api.call(ctx, http.MethodPost, "/authenticate", AuthRequest{PublicKey: line, Project: project, Slug: slug}, &reply)
	if err != nil {
		stale := m.auth.cfg.Stale
		if stale == 0 {
			stale = time.Hour
		}
		var ae *APIError
		// An upstream that answered with a 4xx decided; anything else (no
		// connection, a 5xx from it or a proxy) counts as unreachable.
		reachable := errors.As(err, &ae) && ae.Status/100 == 4
		if ok && !reachable && stale > 0 && now.Before(cached.expires.Add(stale)) {
			m.log.Warn("upstream unreachable; serving a cached access answer", "repo", project+"/"+slug, "err", err)
			return cached.allowed, nil
		}
		return false, errors.Join(ErrAuthUnavailable, err)
	}
	ttl := m.auth.cfg.Allowed
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	if !reply.Allowed {
		ttl = m.auth.cfg.Denied
		if ttl <= 0 {
			ttl = 30 * time.Second
		}
	}
	m.auth.put(ck, authEntry{allowed: reply.Allowed, user: reply.User, expires: now.Add(ttl)}, now)
	return reply.Allowed, nil
}
