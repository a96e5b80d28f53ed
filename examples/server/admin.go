package main

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/bcrypt"
)

var errUnauthorized = errors.New("unauthorized")

// adminPasswordFile, in the home's config directory, holds a generated
// administrator's credentials (mode 0600).
const adminPasswordFile = "admin-password"

// adminSetup is what the properties say about the system administrator.
type adminSetup struct {
	Username, Password, DisplayName, Email string
}

// adminCreds checks HTTP Basic credentials against the stored bcrypt hash. A
// successful check is remembered (by SHA-256 of the credentials) so that a busy
// client does not pay bcrypt on every request.
type adminCreds struct {
	mu       sync.Mutex
	verified [32]byte
	ok       bool
}

// ensureAdmin makes sure an administrator exists. On the first start it takes
// setup.sysadmin.* from the properties, or generates a password, stores only its
// hash, and writes it to a 0600 file in the home; it returns the generated password
// (empty when none was generated) so that it can be printed once.
func (a *app) ensureAdmin(setup adminSetup, configDir string) (created bool, generated string, err error) {
	if a.adminUser() != "" {
		return false, "", nil
	}
	user, pass := setup.Username, setup.Password
	if user == "" {
		user = "admin"
	}
	if pass == "" {
		var b [18]byte
		if _, err := rand.Read(b[:]); err != nil {
			return false, "", err
		}
		pass = base64.RawURLEncoding.EncodeToString(b[:])
		generated = pass
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.DefaultCost)
	if err != nil {
		return false, "", err
	}
	if generated != "" {
		p := filepath.Join(configDir, adminPasswordFile)
		if err := os.WriteFile(p, []byte(user+":"+pass+"\n"), 0o600); err != nil {
			return false, "", fmt.Errorf("write %s: %w", p, err)
		}
	}
	err = a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		if err := b.Put(settingAdminUser, []byte(user)); err != nil {
			return err
		}
		return b.Put(settingAdminHash, hash)
	})
	return err == nil, generated, err
}

// adminUser returns the administrator's user name ("" before setup).
func (a *app) adminUser() string {
	var u string
	a.db.View(func(tx *bolt.Tx) error {
		u = string(tx.Bucket(bucketSettings).Get(settingAdminUser))
		return nil
	})
	return u
}

// checkAdmin reports whether r carries the administrator's credentials.
func (a *app) checkAdmin(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" {
		return false
	}
	sum := sha256.Sum256([]byte(user + "\x00" + pass))
	a.creds.mu.Lock()
	if a.creds.ok && subtle.ConstantTimeCompare(sum[:], a.creds.verified[:]) == 1 {
		a.creds.mu.Unlock()
		return true
	}
	a.creds.mu.Unlock()
	var storedUser string
	var hash []byte
	a.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		storedUser = string(b.Get(settingAdminUser))
		hash = append([]byte(nil), b.Get(settingAdminHash)...)
		return nil
	})
	if storedUser == "" || subtle.ConstantTimeCompare([]byte(user), []byte(storedUser)) != 1 {
		return false
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
		return false
	}
	a.creds.mu.Lock()
	a.creds.verified, a.creds.ok = sum, true
	a.creds.mu.Unlock()
	return true
}

// requireAdmin wraps h so that only the administrator reaches it.
func (a *app) requireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.checkAdmin(r) {
			writeError(w, fmt.Errorf("%w: authenticate as the administrator with HTTP Basic", errUnauthorized))
			return
		}
		h(w, r)
	})
}
