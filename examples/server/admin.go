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
	"time"

	"github.com/gitfleet/gitfleet/webadmin"
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

// adminCheck is the outcome of checkAdmin.
type adminCheck int

const (
	adminNo      adminCheck = iota // no or wrong credentials
	adminYes                       // the administrator
	adminBlocked                   // too many failures: refused without a check
)

// checkAdmin reports whether r carries the administrator's credentials (see
// authGuard for the limits on guessing), and for a blocked attempt how long
// it stays blocked.
func (a *app) checkAdmin(r *http.Request) (adminCheck, time.Duration) {
	if _, ok := webadmin.UserFrom(r.Context()); ok {
		return adminYes, 0 // a page acting in-process for a signed-in session
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user == "" {
		return adminNo, 0
	}
	sum := sha256.Sum256([]byte(user + "\x00" + pass))
	a.creds.mu.Lock()
	if a.creds.ok && subtle.ConstantTimeCompare(sum[:], a.creds.verified[:]) == 1 {
		a.creds.mu.Unlock()
		return adminYes, 0
	}
	a.creds.mu.Unlock()
	now := a.clock()
	addr, name := "addr:"+clientAddress(r), "user:"+user
	if wait := a.guard.blocked(now, addr, name); wait > 0 {
		return adminBlocked, wait
	}
	storedUser, hash, err := a.st.Admin(r.Context())
	if err != nil {
		a.log.Error("reading the administrator's settings", "err", err)
		return adminNo, 0
	}
	known := storedUser != "" && subtle.ConstantTimeCompare([]byte(user), []byte(storedUser)) == 1
	if !known {
		hash = a.guard.dummyHash() // the same work as for the right name
	}
	if !a.guard.compare(r.Context(), hash, pass) || !known {
		a.guard.failed(now, addr, name)
		a.log.Warn("administrator sign-in failed", "remote", clientAddress(r))
		return adminNo, 0
	}
	a.guard.succeeded(addr)
	a.creds.mu.Lock()
	a.creds.verified, a.creds.ok = sum, true
	a.creds.mu.Unlock()
	return adminYes, 0
}

// isAdmin is checkAdmin for node.Node.Admin (the mirroring API's
// administrator check): a blocked attempt is simply not the administrator.
func (a *app) isAdmin(r *http.Request) bool {
	res, _ := a.checkAdmin(r)
	return res == adminYes
}

// clock is a.now, or time.Now.
func (a *app) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

// requireAdmin wraps h so that only the administrator reaches it.
func (a *app) requireAdmin(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch res, wait := a.checkAdmin(r); res {
		case adminBlocked:
			tooManyAttempts(w, wait)
			return
		case adminNo:
			writeError(w, fmt.Errorf("%w: authenticate as the administrator with HTTP Basic", errUnauthorized))
			return
		}
		h(w, r)
	})
}
