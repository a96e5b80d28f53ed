package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/node"
	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/webadmin"
)

// The mirror setup wizard: a mirror started without its setup (no
// setup.baseUrl and no plugin.mirroring.upstream.url, from the properties or
// the environment) serves only the sign-in page and the wizard on its HTTP
// port. The administrator gives the three values Bitbucket's mirror wizard
// asks for; they are checked as the doctor checks them, written to
// bitbucket.properties (where they can be read, and where a later edit still
// wins), and the node then starts as a configured mirror that registers with
// its primary. Properties that set the values skip the wizard.

// mirrorNeedsSetup reports whether cfg is a mirror that the wizard sets up.
func mirrorNeedsSetup(cfg *props.Config) bool {
	return cfg.Mode == props.ModeMirror && cfg.Setup.BaseURL == "" && cfg.Mirroring.UpstreamURL == ""
}

// wizardKeys are the keys the wizard sets; their missing-value errors wait
// for it.
var wizardKeys = map[string]bool{props.KeySetupBaseURL: true, props.KeyMirroringUpstreamURL: true}

// setupTimeout bounds each of the wizard's HTTPS checks.
const setupTimeout = 10 * time.Second

type wizardData struct {
	Name, BaseURL, UpstreamURL string
	Errors                     map[string]string
	AdminURL                   string
}

// wizard serves the setup pages until a configuration is saved.
type wizard struct {
	ui    *webUI
	cfg   *props.Config
	path  string // bitbucket.properties
	once  sync.Once
	saved chan struct{}
	// check is mirror.CheckHTTPS; tests may replace it.
	check func(ctx context.Context, rawURL string) error
}

// runSetupWizard serves the wizard on the node's HTTP address (with its TLS
// settings) until the administrator submits a valid configuration or ctx
// ends.
func (a *app) runSetupWizard(ctx context.Context, cfg *props.Config, home gitfleet.Home, ui *webUI) error {
	wz := &wizard{ui: ui, cfg: cfg, path: home.PropertiesFile(), saved: make(chan struct{}),
		check: func(ctx context.Context, rawURL string) error { return mirror.CheckHTTPS(ctx, rawURL, nil, nil) }}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", ui.handleLoginPage)
	mux.HandleFunc("POST /login", ui.handleLogin)
	mux.HandleFunc("POST /logout", ui.action(ui.handleLogout))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/setup", http.StatusSeeOther) })
	mux.HandleFunc("GET /setup", ui.page(wz.handleForm))
	mux.HandleFunc("POST /setup", ui.action(wz.handleSubmit))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"state": "SETUP"})
	})
	mux.HandleFunc(node.PathLive, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("live\n")) })
	mux.HandleFunc(node.PathReady, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready: the mirror is waiting for its setup (open /setup in a browser)", http.StatusServiceUnavailable)
	})

	addr := net.JoinHostPort(cfg.Server.Address, strconv.Itoa(cfg.Server.Port))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("setup wizard: listen on %s (server.port): %w", addr, err)
	}
	if cfg.Server.SSL.Enabled {
		cert, err := tls.LoadX509KeyPair(cfg.Server.SSL.Certificate, cfg.Server.SSL.CertificatePrivateKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("HTTPS: load server.ssl.certificate and server.ssl.certificate-private-key: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	a.log.Info("this mirror has no setup yet: sign in and open the setup wizard in a browser",
		"url", cfg.PublicBaseURL()+"/setup", "properties", wz.path)
	var result error
	select {
	case <-wz.saved:
		a.log.Info("mirror setup saved", "properties", wz.path)
	case <-ctx.Done():
		result = ctx.Err()
	case err := <-served:
		return fmt.Errorf("setup wizard: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return result
}

func (wz *wizard) handleForm(w http.ResponseWriter, r *http.Request, ss webadmin.Session) {
	d := wizardData{BaseURL: wz.cfg.PublicBaseURL(), Errors: map[string]string{}}
	wz.ui.render(w, http.StatusOK, "wizard", frame(ss, "Set up this mirror", d))
}

// handleSubmit checks the three values and saves them.
func (wz *wizard) handleSubmit(w http.ResponseWriter, r *http.Request, ss webadmin.Session) {
	d := wizardData{
		Name:        strings.TrimSpace(r.PostForm.Get("name")),
		BaseURL:     strings.TrimRight(strings.TrimSpace(r.PostForm.Get("baseUrl")), "/"),
		UpstreamURL: strings.TrimRight(strings.TrimSpace(r.PostForm.Get("upstreamUrl")), "/"),
		Errors:      map[string]string{},
	}
	select {
	case <-wz.saved:
		wz.ui.problem(w, http.StatusConflict, "Already set up", "This mirror's setup was saved already; it cannot be changed here.", "/", "Status")
		return
	default:
	}
	switch {
	case d.Name == "":
		d.Errors["name"] = "Give the mirror a name."
	case len(d.Name) > 200 || strings.ContainsAny(d.Name, "\r\n"):
		d.Errors["name"] = "Use one line of at most 200 characters."
	}
	wz.checkURL(r.Context(), d.Errors, "baseUrl", d.BaseURL, "this mirror",
		"Serve this mirror over HTTPS (server.ssl.enabled with a certificate the primary trusts, or a TLS proxy in front) and enter the URL users open.")
	wz.checkURL(r.Context(), d.Errors, "upstreamUrl", d.UpstreamURL, "the primary",
		"Enter the primary's https:// base URL as its users open it, and make sure this machine trusts the primary's certificate.")
	if len(d.Errors) > 0 {
		pd := frame(ss, "Set up this mirror", d)
		pd.Error = "The configuration was not saved: fix the fields marked below."
		wz.ui.render(w, http.StatusUnprocessableEntity, "wizard", pd)
		return
	}
	if err := wz.save(d); err != nil {
		wz.ui.a.log.Error("saving the mirror setup", "err", err)
		pd := frame(ss, "Set up this mirror", d)
		pd.Error = "The configuration could not be saved to " + wz.path + ": " + err.Error()
		wz.ui.render(w, http.StatusInternalServerError, "wizard", pd)
		return
	}
	wz.ui.a.log.Info("mirror setup submitted from the wizard", "user", ss.User, "name", d.Name, "baseUrl", d.BaseURL, "upstream", d.UpstreamURL)
	d.AdminURL = d.UpstreamURL + "/admin/mirrors"
	pd := frame(ss, "Waiting for approval", d)
	pd.Refresh = 5
	wz.ui.render(w, http.StatusOK, "wizard_done", pd)
	wz.once.Do(func() { close(wz.saved) })
}

// checkURL records in errs why raw cannot serve as what (the doctor's
// checks: https://, reachable, a certificate this machine trusts).
func (wz *wizard) checkURL(ctx context.Context, errs map[string]string, field, raw, what, fix string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		errs[field] = "Enter the URL of " + what + "."
		return
	case err != nil || u.Host == "":
		errs[field] = "This is not a URL. " + fix
		return
	case u.Scheme != "https":
		errs[field] = "The URL must start with https:// — mirroring works only over HTTPS. " + fix
		return
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		errs[field] = "Enter only the base URL, without a query, fragment or user name."
		return
	}
	cctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	if err := wz.check(cctx, raw); err != nil {
		var ce *mirror.CertError
		switch {
		case errors.As(err, &ce):
			errs[field] = "The certificate of " + what + " is not trusted here: " + err.Error() + ". " + fix
		case errors.Is(err, mirror.ErrUnreachable):
			errs[field] = "Could not reach " + what + " at this URL: " + err.Error() + ". " + fix
		default:
			errs[field] = err.Error() + ". " + fix
		}
	}
}

// save writes the setup into bitbucket.properties, keeping the rest of the
// file as it is.
func (wz *wizard) save(d wizardData) error {
	f, err := props.ReadFile(wz.path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(wz.path), 0o750); err != nil {
			return err
		}
		f, err = props.Parse(wz.path, nil)
	}
	if err != nil {
		return err
	}
	f.Set(props.KeySetupDisplayName, d.Name)
	f.Set(props.KeySetupBaseURL, d.BaseURL)
	f.Set(props.KeyMirroringUpstreamURL, d.UpstreamURL)
	return f.Save()
}
