//go:build unix

package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
)

// screenshotsEnv names a directory where TestAdminPagesInBrowser saves its
// screenshots of the pages (the README's pictures); docs/screenshots/update
// sets it.
const screenshotsEnv = "GITFLEET_SCREENSHOTS"

// leafSPKI returns the base64 SHA-256 of the public key of the certificate
// the node serves, for Chromium's --ignore-certificate-errors-spki-list: the
// browser trusts exactly the test nodes' certificates.
func leafSPKI(t *testing.T, n *testutil.ServerNode) string {
	t.Helper()
	for _, e := range n.Env {
		if file, ok := strings.CutPrefix(e, "SERVER_SSL_CERTIFICATE="); ok {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := pem.Decode(data)
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
			return base64.StdEncoding.EncodeToString(sum[:])
		}
	}
	t.Fatal("the node serves no certificate")
	return ""
}

// newBrowser starts headless Chromium with third-party cookies blocked,
// trusting the given certificate keys.
func newBrowser(t *testing.T, spki ...string) context.Context {
	t.Helper()
	exe := testutil.Require(t, "chromium")
	dir := t.TempDir()
	// The profile blocks third-party cookies: the pages must not need them.
	os.MkdirAll(filepath.Join(dir, "Default"), 0o700)
	prefs := `{"profile":{"block_third_party_cookies":true,"cookie_controls_mode":1}}`
	if err := os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(prefs), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spki, ",")),
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // the browser lives as long as ctx
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser actions, failing the test with the page's text on error.
func browse(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	get(t, ctx, what, chromedp.Steps(actions...))
}

// get runs a browser action that returns a value, failing the test with the
// page's text on error.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		loc, _ := chromedp.Run(lctx, chromedp.Location())
		text, _ := chromedp.Run(lctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, text)
	}
	return v
}

// pageText returns the text of the page's main part.
func pageText(t *testing.T, ctx context.Context) string {
	t.Helper()
	return get(t, ctx, "read the page", chromedp.Text(chromedp.CSS("main")))
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		return
	}
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// signIn fills the sign-in page the browser is on.
func signIn(t *testing.T, ctx context.Context, n *testutil.ServerNode, wait string) {
	t.Helper()
	user, pass := n.AdminCreds()
	browse(t, ctx, "sign in",
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), pass),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS(wait)))
}

// TestAdminPagesInBrowser drives the pages with Chromium against a primary and
// a mirror over HTTPS with a test CA, with third-party cookies blocked: the
// mirror's administrator signs in and fills the setup wizard (a bad URL is
// refused inline), the primary's administrator authorizes the request in
// Admin → Mirrors and selects a project, a form posted from another site is
// refused, the mirror's status page reaches synced, and git clones from the
// mirror.
func TestAdminPagesInBrowser(t *testing.T) {
	testutil.Require(t, "chromium")
	ca := testutil.NewCA(t, "gitfleet test CA")
	primary := startNode(t, testutil.ServerOptions{CA: ca})
	g, key := setupUserRepo(t, primary)
	primary.MustAPI(201, "POST", "/rest/api/1.0/projects", map[string]string{"key": "OTHER", "name": "Other team"})
	work := t.TempDir()
	g.Run(work, "clone", "-q", primary.SSHURL("PROJ", "repo"), "w")
	wt := filepath.Join(work, "w")
	head := g.CommitFile(wt, "a.txt", "a\n", "first")
	g.Run(wt, "push", "-q", "origin", "HEAD:main")

	// A mirror with no setup at all: it serves the wizard.
	mport := testutil.FreePort(t)
	mirrorNode := startNode(t, testutil.ServerOptions{CA: ca, HTTPPort: mport, NoWait: true,
		Env: []string{"APPLICATION_MODE=mirror"}})
	waitFor(t, func() bool {
		resp, err := mirrorNode.Client.Get(mirrorNode.URL("/status"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "SETUP")
	})
	// The browser reaches the mirror as localhost and the primary as
	// 127.0.0.1: two hosts, as in a real deployment, so each keeps its own
	// session cookie.
	mirrorURL := fmt.Sprintf("https://localhost:%d", mport)
	ctx := newBrowser(t, leafSPKI(t, primary), leafSPKI(t, mirrorNode))

	browse(t, ctx, "open the mirror", chromedp.Navigate(mirrorURL+"/"))
	signIn(t, ctx, mirrorNode, "#upstreamUrl")
	prefilled := get(t, ctx, "read the base URL", chromedp.Value(chromedp.CSS("#baseUrl")))
	if prefilled != fmt.Sprintf("https://127.0.0.1:%d", mport) {
		t.Fatalf("the wizard's base URL is pre-filled with %q", prefilled)
	}
	if text := pageText(t, ctx); !strings.Contains(text, "cannot be changed after you click Submit configuration") {
		t.Fatalf("the wizard does not warn that its values are final:\n%s", text)
	}
	browse(t, ctx, "fill the wizard",
		chromedp.SendKeys(chromedp.CSS("#name"), "Sydney office"),
		chromedp.SetValue(chromedp.CSS("#baseUrl"), mirrorURL),
		chromedp.SetValue(chromedp.CSS("#upstreamUrl"), primary.URL("")))
	screenshot(t, ctx, "mirror-setup-wizard")
	// An http:// primary URL is refused inline, with what to do.
	browse(t, ctx, "submit a plain-HTTP primary URL",
		chromedp.SetValue(chromedp.CSS("#upstreamUrl"), strings.Replace(primary.URL(""), "https://", "http://", 1)),
		chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS(".field-error")))
	if text := pageText(t, ctx); !strings.Contains(text, "must start with https://") || !strings.Contains(text, "was not saved") {
		t.Fatalf("the wizard did not explain the refused URL:\n%s", text)
	}
	browse(t, ctx, "correct the primary URL", chromedp.SetValue(chromedp.CSS("#upstreamUrl"), primary.URL("")))
	browse(t, ctx, "submit the configuration",
		chromedp.Click(chromedp.CSS("#submit")),
		chromedp.WaitVisible(chromedp.CSS("#primary-admin")))
	adminLink := get(t, ctx, "read the link", chromedp.AttributeValue(chromedp.CSS("#primary-admin"), "href")).Value
	if adminLink != primary.URL("/admin/mirrors") {
		t.Fatalf("the waiting page links to %q, want the primary's Admin → Mirrors", adminLink)
	}
	saved, _ := os.ReadFile(filepath.Join(mirrorNode.Home, "shared", "bitbucket.properties"))
	for _, want := range []string{"setup.displayName=Sydney office", "setup.baseUrl=" + strings.ReplaceAll(mirrorURL, ":", "\\:"),
		"plugin.mirroring.upstream.url="} {
		if !strings.Contains(string(saved), want) {
			t.Fatalf("bitbucket.properties lacks %q:\n%s", want, saved)
		}
	}

	// The primary's administrator authorizes it.
	browse(t, ctx, "open Admin → Mirrors", chromedp.Navigate(adminLink))
	signIn(t, ctx, primary, "header .who")
	var mirrorID string
	waitFor(t, func() bool {
		var list struct {
			Values []struct{ ID, Name, State string }
		}
		json.Unmarshal(primary.MustAPI(200, "GET", "/rest/mirroring/1.0/mirrorServers", nil), &list)
		if len(list.Values) == 1 && list.Values[0].State == "PENDING" {
			mirrorID = list.Values[0].ID
			return true
		}
		return false
	})
	browse(t, ctx, "reload Admin → Mirrors", chromedp.Navigate(adminLink), chromedp.WaitVisible(chromedp.CSS("#pending")))
	if text := pageText(t, ctx); !strings.Contains(text, "Sydney office") || !strings.Contains(text, "SHA256:") || !strings.Contains(text, mirrorURL) {
		t.Fatalf("the request does not show name, base URL and fingerprint:\n%s", text)
	}
	screenshot(t, ctx, "admin-mirrors-request")
	browse(t, ctx, "authorize",
		chromedp.Click(chromedp.CSS(`button[name="authorize"]`)),
		chromedp.WaitVisible(chromedp.CSS("#projects")))
	if text := pageText(t, ctx); !strings.Contains(text, "The mirror is authorized") {
		t.Fatalf("no confirmation after Authorize:\n%s", text)
	}
	browse(t, ctx, "search for the project",
		chromedp.SendKeys(chromedp.CSS("#q"), "proj"),
		chromedp.Click(chromedp.CSS("#search")),
		chromedp.WaitNotPresent(chromedp.CSS("#add-OTHER")),
		chromedp.WaitVisible(chromedp.CSS("#add-PROJ")))
	if text := pageText(t, ctx); strings.Contains(text, "Other team") {
		t.Fatalf("the search shows a project that does not match:\n%s", text)
	}
	browse(t, ctx, "mirror PROJ",
		chromedp.Click(chromedp.CSS("#add-PROJ")),
		chromedp.WaitVisible(chromedp.CSS("#remove-PROJ")))

	// A second mirror set up with properties starts without the wizard (the
	// properties win: startNode waits for RUNNING) and is rejected here.
	m2port := testutil.FreePort(t)
	m2home := t.TempDir()
	os.MkdirAll(filepath.Join(m2home, "shared"), 0o755)
	testutil.LayoutHome(m2home).WriteProperties(t, readmeMirrorProperties(t, primary, m2port))
	startNode(t, testutil.ServerOptions{CA: ca, Home: m2home, HTTPPort: m2port})
	var secondID string
	waitFor(t, func() bool {
		var list struct {
			Values []struct{ ID, Name, State string }
		}
		json.Unmarshal(primary.MustAPI(200, "GET", "/rest/mirroring/1.0/mirrorServers", nil), &list)
		for _, v := range list.Values {
			if v.ID != mirrorID && v.State == "PENDING" {
				secondID = v.ID
			}
		}
		return secondID != ""
	})
	browse(t, ctx, "reject the second mirror",
		chromedp.Navigate(adminLink),
		chromedp.Click(chromedp.CSS(`form[action="/admin/mirrors/`+secondID+`/reject"] button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`form[action="/admin/mirrors/`+secondID+`/reject"]`)))
	if text := pageText(t, ctx); !strings.Contains(text, "The mirror's request was rejected") || !strings.Contains(text, "REJECTED") {
		t.Fatalf("after Reject:\n%s", text)
	}
	var second struct{ State string }
	json.Unmarshal(primary.MustAPI(200, "GET", "/rest/mirroring/1.0/mirrorServers/"+secondID, nil), &second)
	if second.State != "REJECTED" {
		t.Fatalf("the rejected mirror is %s", second.State)
	}
	browse(t, ctx, "back to Admin → Mirrors", chromedp.Navigate(adminLink), chromedp.WaitVisible(chromedp.CSS("#accepted")))
	if text := pageText(t, ctx); !strings.Contains(text, "ACCEPTED") || !strings.Contains(text, "1 selected") ||
		!strings.Contains(text, "Sydney office: ") || !strings.Contains(text, "last contact") {
		t.Fatalf("the authorized mirror does not show its state, projects and each node's contact and lag:\n%s", text)
	}
	screenshot(t, ctx, "admin-mirrors")
	// "Mirror all projects" asks first, and says it is final.
	browse(t, ctx, "open mirror all",
		chromedp.Navigate(primary.URL("/admin/mirrors/"+mirrorID+"/all")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-all")))
	if text := pageText(t, ctx); !strings.Contains(text, "cannot be undone") {
		t.Fatalf("the confirmation does not say it is irreversible:\n%s", text)
	}

	// A form on another site cannot act for the signed-in administrator.
	evil := startEvilSite(t, primary.URL("/admin/mirrors/"+mirrorID+"/remove"))
	browse(t, ctx, "the other site's form",
		chromedp.Navigate(evil),
		chromedp.Click(chromedp.CSS("#go")),
		chromedp.WaitVisible(chromedp.CSS("header"))) // the primary's page, not the other site's
	if text := pageText(t, ctx); !strings.Contains(text, "Refused: the form came from another site") {
		t.Fatalf("the cross-site form was not refused:\n%s", text)
	}
	var one struct{ State string }
	json.Unmarshal(primary.MustAPI(200, "GET", "/rest/mirroring/1.0/mirrorServers/"+mirrorID, nil), &one)
	if one.State != "ACCEPTED" {
		t.Fatalf("after the cross-site form the mirror is %s", one.State)
	}

	// The mirror's status page reaches synced, and the mirror serves clones.
	browse(t, ctx, "open the mirror's status", chromedp.Navigate(mirrorURL+"/"))
	deadline := time.Now().Add(90 * time.Second)
	for {
		browse(t, ctx, "reload the status", chromedp.Navigate(mirrorURL+"/"))
		state, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		if err == nil && strings.Contains(state, "synced 1 of 1 repositories") && strings.Contains(state, "PROJ/repo") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mirror's status page never showed synced:\n%s", state)
		}
		time.Sleep(time.Second)
	}
	if max := get(t, ctx, "read the progress bar", chromedp.AttributeValue(chromedp.CSS("progress"), "max")).Value; max != "1" {
		t.Fatalf("the initial sync's progress bar counts to %q, want 1", max)
	}
	screenshot(t, ctx, "mirror-status")
	mirrorNode.WaitRunning()
	mg := testutil.NewGit(t)
	mg.SetSSH(key, mirrorNode.KnownHosts(t, 0))
	mg.Run(work, "clone", "-q", mirrorNode.SSHURL("PROJ", "repo"), "mc")
	if got := strings.TrimSpace(mg.Run(filepath.Join(work, "mc"), "rev-parse", "HEAD")); got != head {
		t.Fatalf("the mirror's clone is at %s, want %s", got, head)
	}

	// Mirroring all projects, once confirmed, and removing the mirror.
	browse(t, ctx, "mirror all projects",
		chromedp.Navigate(primary.URL("/admin/mirrors/"+mirrorID+"/all")),
		chromedp.Click(chromedp.CSS("#confirm-all")),
		chromedp.WaitVisible(chromedp.CSS("#remove-mirror")))
	if text := pageText(t, ctx); !strings.Contains(text, "The mirror now holds all projects") || !strings.Contains(text, "cannot be undone") {
		t.Fatalf("after mirroring all projects:\n%s", text)
	}
	browse(t, ctx, "remove the mirror",
		chromedp.Click(chromedp.CSS("#remove-mirror")),
		chromedp.WaitNotPresent(chromedp.CSS("#remove-mirror")))
	if text := pageText(t, ctx); !strings.Contains(text, "The mirror was removed") || strings.Contains(text, "Sydney office") {
		t.Fatalf("after removing the mirror:\n%s", text)
	}
	if code, _ := primary.API("GET", "/rest/mirroring/1.0/mirrorServers/"+mirrorID, nil); code != http.StatusNotFound {
		t.Fatalf("the removed mirror still answers %d", code)
	}

	// Signing out ends the session.
	browse(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS(`header button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#username")))
	browse(t, ctx, "open Admin → Mirrors signed out", chromedp.Navigate(adminLink), chromedp.WaitVisible(chromedp.CSS("#username")))
}

// startEvilSite serves, on another origin, a page whose button posts a form
// to target.
func startEvilSite(t *testing.T, target string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><main><h1>Win a prize</h1><form method="post" action="%s">
<input type="hidden" name="csrf" value="guess"><button id="go" type="submit">Claim</button></form></main>`, target)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// TestAdminPagesForms checks the pages without a browser: sign-in failures
// and redirects, a form without its token or after sign-out gets a clear
// page (never a stack trace), the REST API is not reachable with the session
// cookie alone, and names are escaped.
func TestAdminPagesForms(t *testing.T) {
	primary := startNode(t, testutil.ServerOptions{})
	primary.MustAPI(201, "POST", "/rest/api/1.0/projects", map[string]string{"key": "XSS", "name": `<script>alert(1)</script>`})
	primary.MustAPI(201, "POST", "/rest/api/1.0/projects/XSS/repos", map[string]string{"name": "tools"})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (int, string, string) {
		resp, err := c.Get(primary.URL(path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	post := func(path string, form url.Values) (int, string, string) {
		resp, err := c.PostForm(primary.URL(path), form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location"), string(b)
	}
	if code, loc, _ := get("/admin/mirrors"); code != http.StatusSeeOther || loc != "/login?next=%2Fadmin%2Fmirrors" {
		t.Fatalf("unsigned Admin → Mirrors: %d %q", code, loc)
	}
	token := func(page string) string {
		_, tok, ok := strings.Cut(page, `name="csrf" value="`)
		tok, _, _ = strings.Cut(tok, `"`)
		if !ok || tok == "" {
			t.Fatalf("no form token on the page:\n%s", page)
		}
		return tok
	}
	user, pass := primary.AdminCreds()
	// The sign-in form needs the token its page set in a cookie.
	if code, _, body := post("/login", url.Values{"username": {user}, "password": {pass}}); code != http.StatusForbidden ||
		!strings.Contains(body, "The sign-in form is out of date") {
		t.Fatalf("sign-in without the form's token: %d\n%s", code, body)
	}
	_, _, page := get("/login")
	login := token(page)
	if code, _, body := post("/login", url.Values{"username": {user}, "password": {"wrong"}, "csrf": {login}}); code != http.StatusUnauthorized ||
		!strings.Contains(body, "The username or password is not right") {
		t.Fatalf("wrong password: %d\n%s", code, body)
	}
	// A sign-in never redirects to another site.
	if code, loc, _ := post("/login", url.Values{"username": {user}, "password": {pass}, "next": {"//evil.example/"}, "csrf": {login}}); code != http.StatusSeeOther || loc != "/" {
		t.Fatalf("sign-in: %d %q", code, loc)
	}
	code, _, body := get("/")
	if code != 200 || strings.Contains(body, "<script>alert") || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("status page: %d, the project name is not escaped:\n%s", code, body)
	}
	if !strings.Contains(body, primary.SSHURL("XSS", "tools")) {
		t.Fatalf("the status page does not give the repository's clone URL %s:\n%s", primary.SSHURL("XSS", "tools"), body)
	}
	// The session cookie alone does not open the REST API.
	if code, _, _ := get("/rest/mirroring/1.0/mirrorServers"); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Fatalf("REST API with the session cookie only: %d", code)
	}
	if code, _, body := post("/admin/mirrors/x/reject", url.Values{}); code != http.StatusForbidden ||
		!strings.Contains(body, "The form is out of date") || strings.Contains(body, "goroutine") {
		t.Fatalf("form without its token: %d\n%s", code, body)
	}
	_, _, page = get("/admin/mirrors")
	tok := token(page)
	if tok == login {
		t.Fatal("the session's form token is the sign-in page's")
	}
	if code, _, body := post("/admin/mirrors/no-such/reject", url.Values{"csrf": {tok}}); code != http.StatusNotFound ||
		!strings.Contains(body, "Not done: no such mirror") || !strings.Contains(body, "Authorization requests") {
		t.Fatalf("rejecting an unknown mirror: %d\n%s", code, body)
	}
	// A message in the URL is not shown (another site could write one).
	if _, _, body := get("/admin/mirrors?error=Call+us+at+555"); strings.Contains(body, "Call us") {
		t.Fatal("Admin → Mirrors shows a message from its URL")
	}
	if code, _, _ := post("/logout", url.Values{"csrf": {tok}}); code != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", code)
	}
	if code, _, body := post("/admin/mirrors/x/reject", url.Values{"csrf": {tok}}); code != http.StatusUnauthorized ||
		!strings.Contains(body, "Your session has expired") {
		t.Fatalf("form after sign-out: %d\n%s", code, body)
	}
}

// TestWizardChecks runs the wizard's URL checks against what an administrator
// may get wrong: each is refused with the reason and what to do.
func TestWizardChecks(t *testing.T) {
	untrusted := httptest.NewUnstartedServer(http.NotFoundHandler()) // a certificate no one here trusts
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0)
	untrusted.StartTLS()
	defer untrusted.Close()
	wz := &wizard{check: func(ctx context.Context, raw string) error { return mirror.CheckHTTPS(ctx, raw, nil, nil) }}
	for _, tc := range []struct{ url, want string }{
		{"", "Enter the URL"},
		{"mirror.example.com", "not a URL"},
		{"http://127.0.0.1:1", "must start with https://"},
		{"https://127.0.0.1:1/?x=1", "without a query"},
		{"https://127.0.0.1:" + strconv.Itoa(testutil.FreePort(t)), "Could not reach"},
		{untrusted.URL, "is not trusted here"},
	} {
		errs := map[string]string{}
		wz.checkURL(context.Background(), errs, "f", tc.url, "the primary", "FIX.")
		if !strings.Contains(errs["f"], tc.want) {
			t.Errorf("%q: %q, want %q", tc.url, errs["f"], tc.want)
		}
		if tc.url != "" && !strings.Contains(errs["f"], "FIX.") && !strings.Contains(tc.want, "query") {
			t.Errorf("%q: the message %q does not say what to do", tc.url, errs["f"])
		}
	}
}
