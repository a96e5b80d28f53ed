package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// principalFor maps the key that authenticated an SSH connection to a principal:
// a user key, a repository access key, or (on a primary) an accepted mirror's key.
func (a *app) principalFor(ctx context.Context, conn sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
	if k, ok := a.keyByFingerprint(ssh.FingerprintSHA256(key)); ok {
		if k.Project != "" {
			name := k.Label
			if name == "" {
				name = "access-key-" + strconv.FormatUint(k.ID, 10)
			}
			return sshserve.Principal{Name: name, ID: strconv.FormatUint(k.ID, 10), Kind: sshserve.KindRepoKey, Project: k.Project, Slug: k.Slug}, nil
		}
		return sshserve.Principal{Name: k.User, ID: strconv.FormatUint(k.ID, 10), Kind: sshserve.KindUser}, nil
	}
	if a.mirrorKeys != nil {
		if g, ok := a.mirrorKeys.MirrorKey(key); ok {
			return sshserve.Principal{Name: "mirror:" + g.Name, ID: "mirror:" + g.MirrorID, Kind: sshserve.KindUser}, nil
		}
	}
	return sshserve.Principal{}, fmt.Errorf("unknown key %s", ssh.FingerprintSHA256(key))
}

// authorize decides read and write access for a principal from the database (user
// permissions and access keys) or, for a mirror, from its grant.
func (a *app) authorize(ctx context.Context, conn sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
	write := access == sshserve.AccessWrite
	if a.mirrorKeys != nil {
		if g, ok := a.mirrorKeys.MirrorKey(p.Key); ok {
			if !write && g.CanRead(project) {
				return nil
			}
			return sshserve.ErrDenied
		}
	}
	k, ok := a.keyByFingerprint(ssh.FingerprintSHA256(p.Key))
	if !ok { // the key was removed after login
		return sshserve.ErrDenied
	}
	if _, err := a.getRepo(project, slug); err != nil {
		return sshserve.ErrNotFound
	}
	if !a.mayAccess(k, project, slug, write) {
		return sshserve.ErrDenied
	}
	return nil
}

// readAccess answers a mirror's question whether the user owning key may read
// project/slug (mirror.UpstreamConfig.ReadAccess).
func (a *app) readAccess(ctx context.Context, key ssh.PublicKey, project, slug string) (string, bool, error) {
	k, ok := a.keyByFingerprint(ssh.FingerprintSHA256(key))
	if !ok {
		return "", false, nil
	}
	if _, err := a.getRepo(project, slug); err != nil {
		return k.User, false, nil
	}
	return k.User, a.mayAccess(k, project, slug, false), nil
}

// mirrorKeyLookup is the part of mirror.Upstream the SSH callbacks use.
type mirrorKeyLookup interface {
	MirrorKey(pub ssh.PublicKey) (mirror.Grant, bool)
}
