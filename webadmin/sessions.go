// Package webadmin holds what a node's administration pages in a browser
// need beside their templates: sign-in sessions kept in a cookie that never
// depends on third-party cookies, and protection of every form against
// cross-site requests.
//
// A session is a random 256-bit identifier in a cookie that is HttpOnly,
// SameSite=Strict, limited to the path "/", and Secure when the page was
// served over HTTPS; the server keeps the session (its user, its expiry and
// its CSRF token) in memory, so a restart signs everyone out. A session ends
// after IdleTimeout without a request, after MaxAge in all, or at sign-out.
//
// Forms carry the session's CSRF token in a hidden field named by
// [CSRFField]. [Sessions.CheckForm] accepts a POST only when the token matches
// and the browser does not say the request came from another origin (the
// Sec-Fetch-Site and Origin headers), so a form on another site, or on
// another port of the same host, cannot act for a signed-in administrator.
// The sign-in form, which comes before any session, carries a token that
// LoginToken also sets in a cookie, and CheckLogin compares the two.
//
// A REST API beside the pages keeps its own authentication (HTTP Basic in
// gitfleet's example server): the session cookie must not authenticate it,
// since its callers send no CSRF token. Pages that act through the REST API
// in-process mark the request's context with [WithUser] instead.
package webadmin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// CookieName is the session cookie's name.
const CookieName = "gitfleet_session"

// CSRFField is the name of the hidden form field that carries the CSRF token.
const CSRFField = "csrf"

// LoginCookieName is the cookie that carries the sign-in form's token before
// there is a session (a double-submit token: see LoginToken).
const LoginCookieName = "gitfleet_login"

// Default session lifetimes.
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultMaxAge      = 8 * time.Hour
)

// Errors CheckForm returns.
var (
	// ErrNoSession: the request carries no live session (none, expired or
	// ended).
	ErrNoSession = errors.New("webadmin: not signed in, or the session expired")
	// ErrCrossSite: the browser says the request came from another origin.
	ErrCrossSite = errors.New("webadmin: the form was sent from another site")
	// ErrCSRF: the form's CSRF token is missing or is not the session's.
	ErrCSRF = errors.New("webadmin: the form's security token is missing or out of date")
)

// Session is one signed-in browser.
type Session struct {
	User    string
	CSRF    string    // the token forms carry in CSRFField
	Created time.Time // sign-in
	Expires time.Time // the earlier of the idle and the absolute limit
}

// Sessions keeps the signed-in sessions. The zero value is not usable: use
// NewSessions. Its methods are safe for concurrent use.
type Sessions struct {
	// IdleTimeout ends a session after this long without a request
	// (DefaultIdleTimeout when zero); MaxAge ends it this long after sign-in
	// (DefaultMaxAge when zero).
	IdleTimeout, MaxAge time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu   sync.Mutex
	byID map[[32]byte]*session
}

type session struct {
	Session
	lastSeen time.Time
}

// NewSessions returns an empty session store with the default lifetimes.
func NewSessions() *Sessions {
	return &Sessions{byID: map[[32]byte]*session{}}
}

func (s *Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sessions) limits() (idle, maxAge time.Duration) {
	idle, maxAge = s.IdleTimeout, s.MaxAge
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	if maxAge <= 0 {
		maxAge = DefaultMaxAge
	}
	return idle, maxAge
}

// Start signs user in: it creates a session and sets its cookie on w. An
// earlier session of the same browser ends (no session fixation).
func (s *Sessions) Start(w http.ResponseWriter, r *http.Request, user string) (Session, error) {
	s.End(w, r)
	var id [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Session{}, err
	}
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return Session{}, err
	}
	now := s.now()
	_, maxAge := s.limits()
	ss := &session{Session: Session{User: user, CSRF: base64.RawURLEncoding.EncodeToString(tok[:]), Created: now}, lastSeen: now}
	s.mu.Lock()
	s.sweep(now)
	s.byID[sha256.Sum256(id[:])] = ss
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: base64.RawURLEncoding.EncodeToString(id[:]), Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
		MaxAge: int(maxAge / time.Second),
	})
	return s.view(ss), nil
}

// Get returns r's live session, and counts r as activity on it.
func (s *Sessions) Get(r *http.Request) (Session, bool) {
	key, ok := cookieKey(r)
	if !ok {
		return Session{}, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.byID[key]
	if ss == nil {
		return Session{}, false
	}
	if s.expired(ss, now) {
		delete(s.byID, key)
		return Session{}, false
	}
	ss.lastSeen = now
	return s.view(ss), true
}

// End signs r's browser out: its session is forgotten and its cookie
// cleared.
func (s *Sessions) End(w http.ResponseWriter, r *http.Request) {
	if key, ok := cookieKey(r); ok {
		s.mu.Lock()
		delete(s.byID, key)
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// Len returns the number of live sessions.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(s.now())
	return len(s.byID)
}

// CheckForm checks a form submission (the body is parsed here): the browser
// must not say that it comes from another origin, r must carry a live
// session, and the form's CSRFField must be that session's token. It returns
// the session, or ErrCrossSite, ErrNoSession or ErrCSRF.
func (s *Sessions) CheckForm(r *http.Request) (Session, error) {
	if !SameOrigin(r) {
		return Session{}, ErrCrossSite
	}
	ss, ok := s.Get(r)
	if !ok {
		return Session{}, ErrNoSession
	}
	if err := r.ParseForm(); err != nil {
		return Session{}, ErrCSRF
	}
	got := r.PostForm.Get(CSRFField)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(ss.CSRF)) != 1 {
		return Session{}, ErrCSRF
	}
	return ss, nil
}

// LoginToken returns the token the sign-in form carries in CSRFField, and
// sets it in a cookie (HttpOnly, SameSite=Strict, Secure under HTTPS) unless
// the browser already has one: before there is a session, CheckLogin
// compares the two, so a page of another site cannot sign a browser in.
func LoginToken(w http.ResponseWriter, r *http.Request) (string, error) {
	if c, err := r.Cookie(LoginCookieName); err == nil {
		if b, err := base64.RawURLEncoding.DecodeString(c.Value); err == nil && len(b) == 32 {
			return c.Value, nil
		}
	}
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return "", err
	}
	v := base64.RawURLEncoding.EncodeToString(tok[:])
	http.SetCookie(w, &http.Cookie{Name: LoginCookieName, Value: v, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: int(DefaultMaxAge / time.Second)})
	return v, nil
}

// CheckLogin checks a sign-in form: the browser must not say it comes from
// another origin, and its CSRFField must match the cookie LoginToken set. It
// returns ErrCrossSite or ErrCSRF.
func CheckLogin(r *http.Request) error {
	if !SameOrigin(r) {
		return ErrCrossSite
	}
	c, err := r.Cookie(LoginCookieName)
	if err != nil || r.ParseForm() != nil {
		return ErrCSRF
	}
	got := r.PostForm.Get(CSRFField)
	if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(c.Value)) != 1 {
		return ErrCSRF
	}
	return nil
}

// SameOrigin reports whether r may have come from this server's own pages:
// the browser's Sec-Fetch-Site header, when sent, must be same-origin or none
// (typed by the user), and an Origin header, when sent, must name r's own
// scheme and host. A request without either header (an older browser, or a
// program) passes; the CSRF token still has to match.
func SameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && u.Host == r.Host
}

func (s *Sessions) expired(ss *session, now time.Time) bool {
	idle, maxAge := s.limits()
	return now.Sub(ss.lastSeen) >= idle || now.Sub(ss.Created) >= maxAge
}

func (s *Sessions) view(ss *session) Session {
	v := ss.Session
	idle, maxAge := s.limits()
	v.Expires = ss.lastSeen.Add(idle)
	if end := ss.Created.Add(maxAge); end.Before(v.Expires) {
		v.Expires = end
	}
	return v
}

// sweep forgets expired sessions; s.mu is held.
func (s *Sessions) sweep(now time.Time) {
	for k, ss := range s.byID {
		if s.expired(ss, now) {
			delete(s.byID, k)
		}
	}
}

func cookieKey(r *http.Request) ([32]byte, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return [32]byte{}, false
	}
	id, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(id) != 32 {
		return [32]byte{}, false
	}
	return sha256.Sum256(id), true
}

type userKey struct{}

// WithUser returns ctx marked as acting for the signed-in user: a page that
// calls a REST handler in-process passes the session's user this way, and the
// handler's authentication (see UserFrom) accepts it. Only server code can set
// a context value, so no request from outside can carry the mark.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// UserFrom returns the user WithUser marked ctx with.
func UserFrom(ctx context.Context) (string, bool) {
	u, ok := ctx.Value(userKey{}).(string)
	return u, ok && u != ""
}
