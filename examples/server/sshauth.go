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

// userByName maps a certificate principal (plugin.ssh.trusted.user.ca.keys) to
// the user of that name, through sshserve.PrincipalsCallback. The example keeps
// no table of users: a user is known once the server has heard of them, as the
// administrator, by a registered key or by a project permission. A certificate
// for any other name is refused.
func (a *app) userByName(ctx context.Context, conn sshserve.ConnInfo, name string) (sshserve.Principal, error) {
	if err := validUserName(name); err != nil {
		return sshserve.Principal{}, err
	}
	p := sshserve.Principal{Name: name, ID: "user:" + name, Kind: sshserve.KindUser}
	if name == a.adminUser(ctx) {
		return p, nil
	}
	if keys, err := a.st.UserKeys(ctx, name); err == nil && len(keys) > 0 {
		return p, nil
	}
	projects, err := a.st.Projects(ctx)
	if err != nil {
		return sshserve.Principal{}, err
	}
	for _, pr := range projects {
		if perm, err := a.st.Permission(ctx, pr.Key, name); err == nil && perm != "" {
			return p, nil
		}
	}
	return sshserve.Principal{}, fmt.Errorf("no user %q: it has no key, no project permission and is not the administrator", name)
}

// authorize decides read and write access for a principal from the state (user
// permissions and access keys). On a primary, mirror.Upstream's Authorizer wraps
// it to decide for accepted mirrors from their grants.
func (a *app) authorize(ctx context.Context, conn sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
	write := access == sshserve.AccessWrite
	var k sshKey
	if _, isCert := p.Key.(*ssh.Certificate); isCert {
		k = sshKey{User: p.Name} // a certificate acts as the user it names (userByName)
	} else {
		var err error
		if k, err = a.st.KeyByFingerprint(ctx, ssh.FingerprintSHA256(p.Key)); err != nil { // the key was removed after login
			return sshserve.ErrDenied
		}
	}
	if _, err := a.st.Repo(ctx, project, slug); err != nil {
		return sshserve.ErrNotFound
	}
	if !a.mayAccess(ctx, k, project, slug, write) {
		return sshserve.ErrDenied
	}
	return nil
}
