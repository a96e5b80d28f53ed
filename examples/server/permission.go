package main

import (
	"context"
	"fmt"
)

// Project permissions, weakest first, and repository access-key permissions.
const (
	permProjectRead  = "PROJECT_READ"
	permProjectWrite = "PROJECT_WRITE"
	permProjectAdmin = "PROJECT_ADMIN"
	permRepoRead     = "REPO_READ"
	permRepoWrite    = "REPO_WRITE"
)

func projectPermRank(p string) int {
	switch p {
	case permProjectRead:
		return 1
	case permProjectWrite:
		return 2
	case permProjectAdmin:
		return 3
	}
	return 0
}

// setPermission grants user permission on project key, replacing what they had.
func (a *app) setPermission(ctx context.Context, key, user, perm string) error {
	if projectPermRank(perm) == 0 {
		return fmt.Errorf("%w: permission must be PROJECT_READ, PROJECT_WRITE or PROJECT_ADMIN, not %q", errBadRequest, perm)
	}
	if err := validUserName(user); err != nil {
		return err
	}
	return a.st.SetPermission(ctx, key, user, perm)
}

// mayAccess reports whether the holder of key k may read (write=false) or write
// the repository key/slug.
func (a *app) mayAccess(ctx context.Context, k sshKey, key, slug string, write bool) bool {
	if k.Project != "" { // an access key: its repository only
		if k.Project != key || k.Slug != slug {
			return false
		}
		return !write || k.Permission == permRepoWrite
	}
	if k.User != "" && k.User == a.adminUser(ctx) {
		return true
	}
	perm, err := a.st.Permission(ctx, key, k.User)
	if err != nil {
		a.log.Error("reading a permission", "project", key, "user", k.User, "err", err)
		return false
	}
	rank := projectPermRank(perm)
	if write {
		return rank >= 2
	}
	return rank >= 1
}
