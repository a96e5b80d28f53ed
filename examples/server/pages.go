package main

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/node"
	"github.com/gitfleet/gitfleet/webadmin"
	"golang.org/x/crypto/ssh"
)

// The administrator's pages: server-rendered with html/template, readable
// without JavaScript, behind a sign-in session (package webadmin). On a
// primary: the status page (projects, repositories, clone URLs) and Admin →
// Mirrors (authorization requests, project selection, removal); on a mirror:
// the setup wizard while it has no setup (wizard.go) and then its status page
// (initial sync and each repository's lag). Every action goes through the
// REST API in-process (webadmin.Call), so it is authorized and logged as the
// API call is; the REST API itself keeps HTTP Basic.

//go:embed pages/*.html
var pageFiles embed.FS

var pageFuncs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"contact": func(t time.Time) string {
		if t.IsZero() {
			return "no contact yet"
		}
		return "last contact " + time.Since(t).Round(time.Second).String() + " ago"
	},
	"lag": func(behind int64) string {
		switch {
		case behind < 0:
			return "lag unknown"
		case behind == 0:
			return "up to date"
		}
		return fmt.Sprintf("%d events behind", behind)
	},
}

// pageTemplates holds each page parsed with the layout.
var pageTemplates = func() map[string]*template.Template {
	m := map[string]*template.Template{}
	for _, name := range []string{"login", "problem", "primary_status", "mirrors", "mirror_detail", "mirror_all",
		"wizard", "wizard_done", "mirror_status"} {
		m[name] = template.Must(template.New(name).Funcs(pageFuncs).ParseFS(pageFiles, "pages/layout.html", "pages/"+name+".html"))
	}
	return m
}()

// pageData is what the layout shows around a page's own Data.
type pageData struct {
	Title, Role, User, CSRF string
	Flash, Error            string
	Refresh                 int // seconds; 0: none
	Data                    any
}

// webUI serves the pages of one node.
type webUI struct {
	a        *app
	sessions *webadmin.Sessions
	role     string // "primary" or "mirror"
}

func newWebUI(a *app, role string) *webUI {
	return &webUI{a: a, sessions: webadmin.NewSessions(), role: role}
}

// register adds the sign-in pages and the role's pages to mux.
func (u *webUI) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /login", u.handleLoginPage)
	mux.HandleFunc("POST /login", u.handleLogin)
	mux.HandleFunc("POST /logout", u.action(u.handleLogout))
	if u.role == "primary" {
		mux.HandleFunc("GET /{$}", u.page(u.handlePrimaryStatus))
		mux.HandleFunc("GET /admin/mirrors", u.page(u.handleMirrors))
		mux.HandleFunc("GET /admin/mirrors/{id}", u.page(u.handleMirror))
		mux.HandleFunc("GET /admin/mirrors/{id}/all", u.page(u.handleAllConfirm))
		mux.HandleFunc("POST /admin/mirrors/{id}/{action}", u.action(u.handleMirrorAction))
		return
	}
	mux.HandleFunc("GET /{$}", u.page(u.handleMirrorStatus))
}

// render writes page name; the template runs into a buffer first, so a
// failure is a plain 500, never half a page.
func (u *webUI) render(w http.ResponseWriter, status int, name string, pd pageData) {
	pd.Role = u.role
	var buf bytes.Buffer
	if err := pageTemplates[name].ExecuteTemplate(&buf, "layout", pd); err != nil {
		u.a.log.Error("page failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type problemData struct{ Message, Link, LinkText string }

// problem shows a clear page for something the user can act on.
func (u *webUI) problem(w http.ResponseWriter, status int, title, msg, link, linkText string) {
	u.render(w, status, "problem", pageData{Title: title, Data: problemData{msg, link, linkText}})
}

// page wraps a page that needs a signed-in administrator; without a session
// the browser goes to the sign-in page and comes back.
func (u *webUI) page(h func(http.ResponseWriter, *http.Request, webadmin.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss, ok := u.sessions.Get(r)
		if !ok {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, ss)
	}
}

// action wraps a form's target: the form must come from this server's own
// page in a live session (webadmin.Sessions.CheckForm).
func (u *webUI) action(h func(http.ResponseWriter, *http.Request, webadmin.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss, err := u.sessions.CheckForm(r)
		switch {
		case errors.Is(err, webadmin.ErrCrossSite):
			u.a.log.Warn("a form sent from another site was refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"),
				"remote", clientAddress(r))
			u.problem(w, http.StatusForbidden, "Refused: the form came from another site",
				"This request was sent by a page of another site, not by this server's own pages, and nothing was changed. "+
					"If you meant to make the change, open the page here and submit it again.", "/", "Go to the start page")
			return
		case errors.Is(err, webadmin.ErrNoSession):
			u.problem(w, http.StatusUnauthorized, "Your session has expired",
				"You were signed out (after a while without activity, at sign-out, or when the server restarted), so nothing was changed. "+
					"Sign in and try again.", "/login", "Sign in")
			return
		case err != nil:
			u.problem(w, http.StatusForbidden, "The form is out of date",
				"The form's security token is missing or belongs to an earlier session, so nothing was changed. "+
					"Reload the page and submit it again.", "/", "Go to the start page")
			return
		}
		h(w, r, ss)
	}
}

type loginData struct{ Next, Username string }

func (u *webUI) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	u.loginPage(w, r, http.StatusOK, "", loginData{Next: localPath(r.URL.Query().Get("next"))})
}

// loginPage shows the sign-in form with its token (webadmin.LoginToken).
func (u *webUI) loginPage(w http.ResponseWriter, r *http.Request, status int, msg string, d loginData) {
	tok, err := webadmin.LoginToken(w, r)
	if err != nil {
		u.failed(w, err)
		return
	}
	u.render(w, status, "login", pageData{Title: "Sign in", CSRF: tok, Error: msg, Data: d})
}

// handleLogin checks the administrator's name and password with the same
// guard as the REST API's HTTP Basic (authguard.go) and starts a session.
func (u *webUI) handleLogin(w http.ResponseWriter, r *http.Request) {
	switch err := webadmin.CheckLogin(r); {
	case errors.Is(err, webadmin.ErrCrossSite):
		u.problem(w, http.StatusForbidden, "Refused: the form came from another site",
			"Sign in from this server's own sign-in page.", "/login", "Sign in")
		return
	case err != nil:
		u.problem(w, http.StatusForbidden, "The sign-in form is out of date",
			"The form's security token is missing or does not match this browser's, so nobody was signed in. "+
				"Open the sign-in page again.", "/login", "Sign in")
		return
	}
	user, next := r.PostForm.Get("username"), localPath(r.PostForm.Get("next"))
	check := r.Clone(r.Context())
	check.Header = r.Header.Clone()
	check.SetBasicAuth(user, r.PostForm.Get("password"))
	res, wait := u.a.checkAdmin(check)
	switch res {
	case adminBlocked:
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds()+0.999)))
		u.loginPage(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many failed attempts. Try again in %s.", wait.Round(time.Second)),
			loginData{Next: next, Username: user})
		return
	case adminNo:
		u.loginPage(w, r, http.StatusUnauthorized, "The username or password is not right.", loginData{Next: next, Username: user})
		return
	}
	if _, err := u.sessions.Start(w, r, user); err != nil {
		u.a.log.Error("sign-in session", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	u.a.log.Info("administrator signed in to the pages", "user", user, "remote", clientAddress(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *webUI) handleLogout(w http.ResponseWriter, r *http.Request, ss webadmin.Session) {
	u.sessions.End(w, r)
	u.a.log.Info("administrator signed out of the pages", "user", ss.User)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// localPath returns p when it is a path on this server, else "/": a sign-in
// never redirects elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}

// frame fills the layout's part of the page data.
func frame(ss webadmin.Session, title string, data any) pageData {
	return pageData{Title: title, User: ss.User, CSRF: ss.CSRF, Data: data}
}

type repoRow struct{ Name, CloneURL string }
type projectRow struct {
	Key, Name string
	Repos     []repoRow
}

func (u *webUI) handlePrimaryStatus(w http.ResponseWriter, r *http.Request, ss webadmin.Session) {
	ps, err := u.a.st.Projects(r.Context())
	if err != nil {
		u.failed(w, err)
		return
	}
	rows := make([]projectRow, 0, len(ps))
	for _, p := range ps {
		rs, err := u.a.st.Repos(r.Context(), p.Key)
		if err != nil {
			u.failed(w, err)
			return
		}
		row := projectRow{Key: p.Key, Name: p.Name}
		for _, repo := range rs {
			row.Repos = append(row.Repos, repoRow{Name: repo.Name, CloneURL: u.a.cloneURL(repo.Project, repo.Slug)})
		}
		rows = append(rows, row)
	}
	u.render(w, http.StatusOK, "primary_status", frame(ss, "Status", struct{ Projects []projectRow }{rows}))
}

func (u *webUI) failed(w http.ResponseWriter, err error) {
	u.a.log.Error("page failed", "err", err)
	u.problem(w, http.StatusInternalServerError, "Something went wrong",
		"The server could not show this page; its log says why.", "/", "Go to the start page")
}

// api is the primary's mirroring API, or nil before it has started.
func (u *webUI) api() http.Handler {
	if u.a.node == nil {
		return nil
	}
	if up := u.a.node.Upstream(); up != nil {
		return up
	}
	return nil
}

// call makes a mirroring API call in-process for the signed-in user.
func (u *webUI) call(r *http.Request, ss webadmin.Session, method, path string, body, out any) error {
	api := u.api()
	if api == nil {
		return errors.New("the mirroring API is not running yet")
	}
	return webadmin.Call(r.Context(), api, ss.User, method, node.PathMirroring+path, body, out)
}

type mirrorRow struct {
	mirror.MirrorServer
	Nodes []mirror.FarmNode
}

type mirrorsData struct {
	Pending, Other []mirror.MirrorServer
	Accepted       []mirrorRow
}

func (u *webUI) handleMirrors(w http.ResponseWriter, r *http.Request, ss webadmin.Session) {
	u.mirrorsPage(w, r, ss, http.StatusOK, "")
}

// mirrorsPage shows Admin → Mirrors, with errMsg when an action failed.
func (u *webUI) mirrorsPage(w http.ResponseWriter, r *http.Request, ss webadmin.Session, status int, errMsg string) {
	var page mirror.Page[mirror.MirrorServer]
	if err := u.call(r, ss, "GET", "mirrorServers?limit=1000", nil, &page); err != nil {
		u.failed(w, err)
		return
	}
	var d mirrorsData
	for _, m := range page.Values {
		switch {
		case m.State == mirror.StatePending:
			d.Pending = append(d.Pending, m)
		case m.State == mirror.StateAccepted && m.Farm == "":
			row := mirrorRow{MirrorServer: m}
			var nodes mirror.Page[mirror.FarmNode]
			if err := u.call(r, ss, "GET", "mirrorServers/"+m.ID+"/nodes", nil, &nodes); err == nil {
				row.Nodes = nodes.Values
			}
			d.Accepted = append(d.Accepted, row)
		case m.State == mirror.StateRejected:
			d.Other = append(d.Other, m)
		}
	}
	pd := frame(ss, "Admin → Mirrors", d)
	pd.Flash, pd.Error = flashOf(r), errMsg
	u.render(w, status, "mirrors", pd)
}

// flashes are the confirmations an action redirects with (?done=...).
var flashes = map[string]string{
	"authorized": "The mirror is authorized. Choose the projects it mirrors.",
	"rejected":   "The mirror's request was rejected.",
	"removed":    "The mirror was removed; its key no longer has access.",
	"added":      "The project is mirrored.",
	"dropped":    "The project is no longer mirrored.",
	"all":        "The mirror now holds all projects.",
}

func flashOf(r *http.Request) string { return flashes[r.URL.Query().Get("done")] }

type projectChoice struct {
	Key, Name string
	Mirrored  bool
}

type mirrorDetail struct {
	Mirror   mirror.MirrorServer
	Nodes    []mirror.FarmNode
	All      bool
	Query    string
	Projects []projectChoice
}

// mirrorDetail reads the mirror of the request's {id}.
func (u *webUI) mirrorDetail(w http.ResponseWriter, r *http.Request, ss webadmin.Session) (mirrorDetail, bool) {
	var d mirrorDetail
	err := u.call(r, ss, "GET", "mirrorServers/"+url.PathEscape(r.PathValue("id")), nil, &d.Mirror)
	var ae *webadmin.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		u.problem(w, http.StatusNotFound, "No such mirror", "The mirror was removed, or the link is wrong.", "/admin/mirrors", "Admin → Mirrors")
		return d, false
	}
	if err != nil {
		u.failed(w, err)
		return d, false
	}
	d.All = d.Mirror.MirroringMode == mirror.ModeAllProjects
	return d, true
}

func (u *webUI) handleMirror(w http.ResponseWriter, r *http.Request, ss webadmin.Session) {
	u.mirrorPage(w, r, ss, http.StatusOK, "")
}

// mirrorPage shows one mirror's page, with errMsg when an action failed.
func (u *webUI) mirrorPage(w http.ResponseWriter, r *http.Request, ss webadmin.Session, status int, errMsg string) {
	d, ok := u.mirrorDetail(w, r, ss)
	if !ok {
		return
	}
	var nodes mirror.Page[mirror.FarmNode]
	if d.Mirror.State == mirror.StateAccepted && u.call(r, ss, "GET", "mirrorServers/"+d.Mirror.ID+"/nodes", nil, &nodes) == nil {
		d.Nodes = nodes.Values
	}
	d.Query = strings.TrimSpace(r.URL.Query().Get("q"))
	ps, err := u.a.st.Projects(r.Context())
	if err != nil {
		u.failed(w, err)
		return
	}
	q := strings.ToLower(d.Query)
	for _, p := range ps {
		if q != "" && !strings.Contains(strings.ToLower(p.Name), q) && !strings.Contains(strings.ToLower(p.Key), q) {
			continue
		}
		d.Projects = append(d.Projects, projectChoice{Key: p.Key, Name: p.Name, Mirrored: slices.Contains(d.Mirror.Projects, p.Key)})
	}
	pd := frame(ss, d.Mirror.Name, d)
	pd.Flash, pd.Error = flashOf(r), errMsg
	u.render(w, status, "mirror_detail", pd)
}

func (u *webUI) handleAllConfirm(w http.ResponseWriter, r *http.Request, ss webadmin.Session) {
	d, ok := u.mirrorDetail(w, r, ss)
	if !ok {
		return
	}
	u.render(w, http.StatusOK, "mirror_all", frame(ss, "Mirror all projects", d))
}

// handleMirrorAction runs an Admin → Mirrors form through the mirroring API
// and returns to the page with what happened.
func (u *webUI) handleMirrorAction(w http.ResponseWriter, r *http.Request, ss webadmin.Session) {
	id := r.PathValue("id")
	path := "mirrorServers/" + url.PathEscape(id)
	back, done := "/admin/mirrors/"+url.PathEscape(id), ""
	var err error
	switch r.PathValue("action") {
	case "authorize":
		// Authorized for no project yet: the administrator chooses next.
		err = u.call(r, ss, "POST", path+"/accept", mirror.AcceptRequest{MirroringMode: mirror.ModeSelectedProjects, Projects: []string{}}, nil)
		done = "authorized"
	case "reject":
		err = u.call(r, ss, "POST", path+"/reject", nil, nil)
		back, done = "/admin/mirrors", "rejected"
	case "remove":
		err = u.call(r, ss, "DELETE", path, nil, nil)
		back, done = "/admin/mirrors", "removed"
	case "projects":
		key := r.PostForm.Get("key")
		switch r.PostForm.Get("action") {
		case "add":
			err, done = u.call(r, ss, "PUT", path+"/projects/"+url.PathEscape(key), nil, nil), "added"
		case "remove":
			err, done = u.call(r, ss, "DELETE", path+"/projects/"+url.PathEscape(key), nil, nil), "dropped"
		default:
			err = &webadmin.APIError{Status: http.StatusBadRequest, Message: "unknown project action"}
		}
	case "all":
		err, done = u.call(r, ss, "POST", path+"/all-projects", nil, nil), "all"
	default:
		http.NotFound(w, r)
		return
	}
	var ae *webadmin.APIError
	switch {
	case errors.As(err, &ae):
		// The page again, with the API's reason (never carried in a URL,
		// where another site could write one).
		msg := "Not done: " + ae.Message
		if done == "authorized" || done == "rejected" || done == "removed" || ae.Status == http.StatusNotFound {
			u.mirrorsPage(w, r, ss, ae.Status, msg)
			return
		}
		u.mirrorPage(w, r, ss, ae.Status, msg)
	case err != nil:
		u.failed(w, err)
	default:
		u.a.log.Info("mirror administration from the pages", "user", ss.User, "mirror", id, "action", done)
		http.Redirect(w, r, back+"?done="+done, http.StatusSeeOther)
	}
}

type mirrorStatusData struct {
	Status      node.MirrorStatusJSON
	Fingerprint string
	AdminURL    string
	Synced      bool
	Done, Total int
}

func (u *webUI) handleMirrorStatus(w http.ResponseWriter, r *http.Request, ss webadmin.Session) {
	var m *mirror.Mirror
	if u.a.node != nil {
		m = u.a.node.Mirror()
	}
	if m == nil {
		pd := frame(ss, "Starting", problemData{"The mirror is starting; this page refreshes by itself.", "/", "Refresh"})
		pd.Refresh = 2
		u.render(w, http.StatusServiceUnavailable, "problem", pd)
		return
	}
	st := m.Status()
	v := node.MirrorStatusView(st)
	d := mirrorStatusData{Status: v, Fingerprint: ssh.FingerprintSHA256(m.PublicKey()),
		AdminURL: strings.TrimRight(st.UpstreamURL, "/") + "/admin/mirrors",
		Synced:   st.Sync.Initial.Done, Done: st.Sync.Initial.ReposDone, Total: st.Sync.Initial.ReposTotal}
	if d.Synced {
		// After the initial sync, projects added later count too: synced
		// means every repository has been fetched at least once.
		d.Done, d.Total = 0, len(v.Repos)
		for _, r := range v.Repos {
			if r.LastSync != "" {
				d.Done++
			}
		}
		d.Synced = d.Done == d.Total
	}
	pd := frame(ss, "Mirror status", d)
	pd.Refresh = 5
	u.render(w, http.StatusOK, "mirror_status", pd)
}
