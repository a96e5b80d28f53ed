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
	if k, err := a.st.KeyByFingerprint(ctx, ssh.FingerprintSHA256(key)); err == nil {
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

// authorize decides read and write access for a principal from the state (user
// permissions and access keys). On a primary, mirror.Upstream's Authorizer wraps
// it to decide for accepted mirrors from their grants.
func (a *app) authorize(ctx context.Context, conn sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
	write := access == sshserve.AccessWrite
	k, err := a.st.KeyByFingerprint(ctx, ssh.FingerprintSHA256(p.Key))
	if err != nil { // the key was removed after login
		return sshserve.ErrDenied
	}
	if _, err := a.st.Repo(ctx, project, slug); err != nil {
		return sshserve.ErrNotFound
	}
	if !a.mayAccess(ctx, k, project, slug, write) {
		return sshserve.ErrDenied
	}
	return nil
}
