package main

import (
	"context"
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
func (a *app) ensureAdmin(ctx context.Context, setup adminSetup, configDir string) (created bool, generated string, err error) {
	if a.adminUser(ctx) != "" {
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
	err = a.st.SetAdmin(ctx, user, hash)
	return err == nil, generated, err
}

// adminUser returns the administrator's user name ("" before setup, or when it
// cannot be read).
func (a *app) adminUser(ctx context.Context) string {
	u, _, err := a.st.Admin(ctx)
	if err != nil {
		a.log.Error("reading the administrator's settings", "err", err)
		return ""
	}
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
	storedUser, hash, err := a.st.Admin(r.Context())
	if err != nil {
		a.log.Error("reading the administrator's settings", "err", err)
		return false
	}
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
