package webadmin

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// signIn starts a session and returns the cookie a browser would send back.
func signIn(t *testing.T, s *Sessions, tlsOn bool) (*http.Cookie, Session) {
	t.Helper()
	r := httptest.NewRequest("POST", "/login", nil)
	if tlsOn {
		r.TLS = &tls.ConnectionState{}
	}
	w := httptest.NewRecorder()
	ss, err := s.Start(w, r, "admin")
	if err != nil {
		t.Fatal(err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 2 || cookies[1].Name != CookieName {
		t.Fatalf("cookies set at sign-in: %v", cookies)
	}
	return cookies[1], ss
}

func TestSessionCookie(t *testing.T) {
	s := NewSessions()
	for _, tlsOn := range []bool{false, true} {
		c, ss := signIn(t, s, tlsOn)
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != tlsOn {
			t.Fatalf("cookie (TLS %v): HttpOnly %v SameSite %v Path %q Secure %v", tlsOn, c.HttpOnly, c.SameSite, c.Path, c.Secure)
		}
		if ss.User != "admin" || len(ss.CSRF) < 40 {
			t.Fatalf("session %+v", ss)
		}
	}
}

func formRequest(c *http.Cookie, form url.Values, headers map[string]string) *http.Request {
	r := httptest.NewRequest("POST", "http://node.example:7990/admin/mirrors/1/reject", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		r.AddCookie(c)
	}
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

func TestCheckForm(t *testing.T) {
	s := NewSessions()
	c, ss := signIn(t, s, false)
	good := url.Values{CSRFField: {ss.CSRF}}
	tests := []struct {
		name    string
		cookie  *http.Cookie
		form    url.Values
		headers map[string]string
		want    error
	}{
		{"own page", c, good, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://node.example:7990"}, nil},
		{"no browser headers", c, good, nil, nil},
		{"another site", c, good, map[string]string{"Sec-Fetch-Site": "cross-site"}, ErrCrossSite},
		{"another port of the host", c, good, map[string]string{"Sec-Fetch-Site": "same-site"}, ErrCrossSite},
		{"foreign origin", c, good, map[string]string{"Origin": "http://node.example:8080"}, ErrCrossSite},
		{"no token", c, url.Values{}, nil, ErrCSRF},
		{"wrong token", c, url.Values{CSRFField: {ss.CSRF[:len(ss.CSRF)-1] + "x"}}, nil, ErrCSRF},
		{"no cookie", nil, good, nil, ErrNoSession},
		{"forged cookie", &http.Cookie{Name: CookieName, Value: strings.Repeat("A", 43)}, good, nil, ErrNoSession},
	}
	for _, tt := range tests {
		_, err := s.CheckForm(formRequest(tt.cookie, tt.form, tt.headers))
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	clk := &clock{time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}
	s := NewSessions()
	s.Now, s.IdleTimeout, s.MaxAge = clk.now, 10*time.Minute, time.Hour
	c, _ := signIn(t, s, false)
	get := func() bool {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		_, ok := s.Get(r)
		return ok
	}
	// Activity every 9 minutes keeps it alive until the absolute limit.
	for range 6 {
		clk.t = clk.t.Add(9 * time.Minute)
		if !get() {
			t.Fatalf("session ended at %v, within its idle and absolute limits", clk.t)
		}
	}
	clk.t = clk.t.Add(7 * time.Minute) // 61 minutes after sign-in
	if get() {
		t.Fatal("session outlived its absolute limit")
	}
	c, _ = signIn(t, s, false)
	clk.t = clk.t.Add(10 * time.Minute)
	if get() {
		t.Fatal("session outlived its idle limit")
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("%d sessions kept after expiry", n)
	}
}

func TestSignOutAndFixation(t *testing.T) {
	s := NewSessions()
	c, _ := signIn(t, s, false)
	// Signing in again from the same browser replaces the session.
	r := httptest.NewRequest("POST", "/login", nil)
	r.AddCookie(c)
	w := httptest.NewRecorder()
	if _, err := s.Start(w, r, "admin"); err != nil {
		t.Fatal(err)
	}
	old := httptest.NewRequest("GET", "/", nil)
	old.AddCookie(c)
	if _, ok := s.Get(old); ok {
		t.Fatal("the session from before the new sign-in still works")
	}
	c2 := w.Result().Cookies()[1]
	r = httptest.NewRequest("POST", "/logout", nil)
	r.AddCookie(c2)
	w = httptest.NewRecorder()
	s.End(w, r)
	if got := w.Result().Cookies(); len(got) != 1 || got[0].MaxAge >= 0 {
		t.Fatalf("sign-out cookie: %v", got)
	}
	r = httptest.NewRequest("GET", "/", nil)
	r.AddCookie(c2)
	if _, ok := s.Get(r); ok {
		t.Fatal("the session works after sign-out")
	}
}

func TestCall(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, ok := UserFrom(r.Context()); !ok || u != "admin" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == "POST" {
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(`{"errors":[{"message":"only a PENDING mirror can be accepted"}]}`))
			return
		}
		w.Write([]byte(`{"name":"m1"}`))
	})
	var out struct{ Name string }
	if err := Call(context.Background(), api, "admin", "GET", "/x", nil, &out); err != nil || out.Name != "m1" {
		t.Fatalf("GET: %v, %+v", err, out)
	}
	err := Call(context.Background(), api, "admin", "POST", "/x", map[string]int{"a": 1}, nil)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 409 || ae.Message != "only a PENDING mirror can be accepted" {
		t.Fatalf("POST: %v", err)
	}
	if err := Call(context.Background(), api, "", "GET", "/x", nil, nil); !errors.As(err, &ae) || ae.Status != 401 {
		t.Fatalf("without a user: %v", err)
	}
}

func TestLoginToken(t *testing.T) {
	w := httptest.NewRecorder()
	tok, err := LoginToken(w, httptest.NewRequest("GET", "/login", nil))
	if err != nil {
		t.Fatal(err)
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 || cs[0].Name != LoginCookieName || cs[0].Value != tok || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login cookie %v", cs)
	}
	// The same browser keeps its token.
	r := httptest.NewRequest("GET", "/login", nil)
	r.AddCookie(cs[0])
	w = httptest.NewRecorder()
	if again, _ := LoginToken(w, r); again != tok || len(w.Result().Cookies()) != 0 {
		t.Fatal("a second sign-in page changed the token")
	}
	for _, tc := range []struct {
		name    string
		cookie  *http.Cookie
		form    url.Values
		headers map[string]string
		want    error
	}{
		{"own form", cs[0], url.Values{CSRFField: {tok}}, nil, nil},
		{"no cookie", nil, url.Values{CSRFField: {tok}}, nil, ErrCSRF},
		{"no token", cs[0], url.Values{}, nil, ErrCSRF},
		{"another token", cs[0], url.Values{CSRFField: {strings.Repeat("A", 43)}}, nil, ErrCSRF},
		{"another site", cs[0], url.Values{CSRFField: {tok}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, ErrCrossSite},
	} {
		if err := CheckLogin(formRequest(tc.cookie, tc.form, tc.headers)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
