package mirror

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// AuthCacheConfig tunes how the mirror caches the upstream's answers about
// users' read access.
type AuthCacheConfig struct {
	// Allowed is how long a "may read" answer is trusted. Zero means 5 minutes.
	Allowed time.Duration
	// Denied is how long a "may not read" answer is trusted. Zero means 30 seconds.
	Denied time.Duration
	// Stale is how long past its expiry an answer keeps serving while the
	// upstream cannot be reached. Zero means 1 hour; negative means never.
	Stale time.Duration
	// MaxEntries bounds the cache. Zero means 10,000.
	MaxEntries int
}

// authEntry is one cached answer.
type authEntry struct {
	allowed bool
	user    string
	expires time.Time
}

// authCache caches the upstream's /authenticate answers per key and repository.
type authCache struct {
	cfg AuthCacheConfig
	mu  sync.Mutex
	m   map[string]authEntry
}

func (c *authCache) get(key string) (authEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return e, ok
}

func (c *authCache) put(key string, e authEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]authEntry{}
	}
	max := c.cfg.MaxEntries
	if max <= 0 {
		max = 10000
	}
	if len(c.m) >= max {
		for k, old := range c.m {
			if now.After(old.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // still full: drop arbitrary entries
			if len(c.m) < max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = e
}

// ConfigureServer sets srv's Backend, PublicKeyCallback and Authorizer so that it
// serves the mirror's repositories read-only: any key may connect; each read is
// asked of the upstream (POST /authenticate) and cached; pushes are refused with
// a message naming the upstream's clone URL; repositories outside the mirror's
// projects, or any repository while the mirror is not accepted, are not found.
func (m *Mirror) ConfigureServer(srv *sshserve.Server) {
	srv.Backend = m.cfg.Repos
	srv.PublicKeyCallback = func(ctx context.Context, conn sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
		fp := ssh.FingerprintSHA256(key)
		return sshserve.Principal{Name: fp, ID: fp}, nil
	}
	srv.Authorizer = m.authorize
}

// authorize is the mirror's sshserve.Authorizer.
func (m *Mirror) authorize(ctx context.Context, conn sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
	reg := m.registration()
	if reg.State != StateAccepted {
		return sshserve.ErrNotFound
	}
	if reg.Mode != ModeAllProjects && !contains(reg.Projects, project) {
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
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
