package mirror

import (
	"context"
	"errors"
	"slices"

	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// Grant is the read access an accepted mirror's key holds on the primary.
type Grant struct {
	MirrorID string
	Name     string
	Mode     Mode
	Projects []string // sorted; empty for ModeAllProjects
}

// CanRead reports whether the grant covers project.
func (g Grant) CanRead(project string) bool {
	if g.Mode == ModeAllProjects {
		return true
	}
	_, found := slices.BinarySearch(g.Projects, project)
	return found
}

// MirrorKey reports whether pub belongs to an accepted mirror and what it may
// read; a pending, rejected or removed mirror's key is not found. The answer
// reflects the state at the moment of the call, so a removal takes effect at
// once. PublicKeyCallback and Authorizer use it.
func (u *Upstream) MirrorKey(pub ssh.PublicKey) (Grant, bool) {
	return u.grant(context.Background(), pub)
}

// grant is MirrorKey with a context.
func (u *Upstream) grant(ctx context.Context, pub ssh.PublicKey) (Grant, bool) {
	rec, err := u.state.MirrorByKey(ctx, ssh.FingerprintSHA256(pub))
	if err != nil {
		if !isNotFound(err) {
			u.log.Error("mirror key lookup failed", "err", err)
		}
		return Grant{}, false
	}
	if rec.State != StateAccepted {
		return Grant{}, false
	}
	return Grant{MirrorID: rec.ID, Name: rec.Name, Mode: rec.Mode, Projects: slices.Clone(rec.Projects)}, true
}

// errUnknownKey refuses a key that neither an accepted mirror nor the wrapped
// callback knows.
var errUnknownKey = errors.New("mirror: unknown key")

// PublicKeyCallback wraps next, the primary's own key lookup, so that accepted
// mirrors' keys are recognised too: such a key connects as a user principal
// named "mirror:NAME" with ID "mirror:ID"; any other key is passed to next (nil
// next refuses it).
func (u *Upstream) PublicKeyCallback(next sshserve.PublicKeyCallback) sshserve.PublicKeyCallback {
	return func(ctx context.Context, conn sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
		if g, ok := u.grant(ctx, key); ok {
			return sshserve.Principal{Name: "mirror:" + g.Name, ID: "mirror:" + g.MirrorID, Kind: sshserve.KindUser}, nil
		}
		if next == nil {
			return sshserve.Principal{}, errUnknownKey
		}
		return next(ctx, conn, key)
	}
}

// Authorizer wraps next, the primary's own authorization, so that accepted
// mirrors may read exactly their projects: a request by an accepted mirror's key
// (looked up again, so that a removal takes effect at once) is allowed when it
// reads a project of the mirror's grant and refused otherwise; any other request
// is passed to next (nil next refuses it).
func (u *Upstream) Authorizer(next sshserve.Authorizer) sshserve.Authorizer {
	return func(ctx context.Context, conn sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
		if p.Key != nil {
			if g, ok := u.grant(ctx, p.Key); ok {
				if access == sshserve.AccessRead && g.CanRead(project) {
					return nil
				}
				return sshserve.ErrDenied
			}
		}
		if next == nil {
			return sshserve.ErrDenied
		}
		return next(ctx, conn, p, project, slug, access)
	}
}
