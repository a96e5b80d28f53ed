package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// principalFor maps the key that authenticated an SSH connection to a principal:
// a user key or a repository access key. On a primary, mirror.Upstream's
// PublicKeyCallback wraps it to recognise accepted mirrors' keys first.
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
	return sshserve.Principal{}, fmt.Errorf("unknown key %s", ssh.FingerprintSHA256(key))
}

// authorize decides read and write access for a principal from the database (user
// permissions and access keys). On a primary, mirror.Upstream's Authorizer wraps
// it to decide for accepted mirrors from their grants.
func (a *app) authorize(ctx context.Context, conn sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
	write := access == sshserve.AccessWrite
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
