package main

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
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

func permKey(projectKey, user string) []byte { return []byte(projectKey + "\x00" + user) }

// setPermission grants user permission on project key, replacing what they had.
func (a *app) setPermission(key, user, perm string) error {
	if projectPermRank(perm) == 0 {
		return fmt.Errorf("%w: permission must be PROJECT_READ, PROJECT_WRITE or PROJECT_ADMIN, not %q", errBadRequest, perm)
	}
	if err := validUserName(user); err != nil {
		return err
	}
	return a.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketProjects).Get([]byte(key)) == nil {
			return fmt.Errorf("%w: project %s does not exist", errNotFound, key)
		}
		return tx.Bucket(bucketPerms).Put(permKey(key, user), []byte(perm))
	})
}

// permission returns user's permission on project key ("" when none).
func (a *app) permission(key, user string) string {
	var p string
	a.db.View(func(tx *bolt.Tx) error {
		p = string(tx.Bucket(bucketPerms).Get(permKey(key, user)))
		return nil
	})
	return p
}

// mayAccess reports whether the holder of key k may read (write=false) or write
// the repository key/slug.
func (a *app) mayAccess(k sshKey, key, slug string, write bool) bool {
	if k.Project != "" { // an access key: its repository only
		if k.Project != key || k.Slug != slug {
			return false
		}
		return !write || k.Permission == permRepoWrite
	}
	if k.User != "" && k.User == a.adminUser() {
		return true
	}
	rank := projectPermRank(a.permission(key, k.User))
	if write {
		return rank >= 2
	}
	return rank >= 1
}
