package mirror

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// CheckStatus is the outcome of one diagnostic check.
type CheckStatus string

// The check outcomes.
const (
	CheckPass    CheckStatus = "pass"
	CheckFail    CheckStatus = "fail"
	CheckSkipped CheckStatus = "skipped"
)

// The names of the checks Diagnose runs, in order.
const (
	CheckUpstreamScheme = "upstream-https"
	CheckUpstreamDNS    = "upstream-dns"
	CheckUpstreamTCP    = "upstream-https-port"
	CheckUpstreamSSHTCP = "upstream-ssh-port"
	CheckUpstreamTLS    = "upstream-certificate"
	CheckClock          = "clock"
	CheckRegistration   = "registration"
	CheckHostKey        = "upstream-host-key"
	CheckSSHAuth        = "ssh-authentication"
	CheckMirrorBaseURL  = "mirror-base-url"
)

// CheckResult is one entry of a diagnostic report.
type CheckResult struct {
	Name     string        `json:"name"`     // one of the Check* names
	Title    string        `json:"title"`    // what was checked, for people
	Status   CheckStatus   `json:"status"`   // pass, fail or skipped
	Observed string        `json:"observed"` // what was seen, or why it was skipped
	Action   string        `json:"action,omitempty"`
	Duration time.Duration `json:"durationNs"`
}

// Report is the outcome of Diagnose: one entry per check, in the order a person
// would check.
type Report struct {
	Checks []CheckResult `json:"checks"`
}

// OK reports whether no check failed.
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if c.Status == CheckFail {
			return false
		}
	}
	return true
}

// Check returns the entry named name.
func (r *Report) Check(name string) (CheckResult, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return CheckResult{}, false
}

// diag carries the state of one Diagnose run.
type diag struct {
	cfg     Config
	now     func() time.Time
	timeout time.Duration
	report  *Report
	failed  map[string]bool
	ident   *Identity
	reg     Registration
	signer  ssh.Signer
	upURL   *url.URL
	sshAddr string
}

// Diagnose runs the checks behind the mirror troubleshooting tables against the
// mirror described by cfg (its setup, and the identity and registration stored
// in cfg.State with cfg.Key when it was set up; either may be nil for a mirror
// never started) and returns a report. It changes nothing. Each check is bounded by cfg.CheckTimeout (zero: 10 seconds); a check
// that cannot run because an earlier one failed is skipped with the reason.
func Diagnose(ctx context.Context, cfg Config) *Report {
	d := &diag{cfg: cfg, now: cfg.Now, timeout: cfg.CheckTimeout, report: &Report{}, failed: map[string]bool{}}
	if d.now == nil {
		d.now = time.Now
	}
	if d.timeout <= 0 {
		d.timeout = 10 * time.Second
	}
	d.loadState()
	d.run(ctx, CheckUpstreamScheme, "the upstream URL uses https://", nil, d.checkScheme)
	d.run(ctx, CheckUpstreamDNS, "the upstream host name resolves", []string{CheckUpstreamScheme}, d.checkDNS)
	d.run(ctx, CheckUpstreamTCP, "TCP reaches the upstream's HTTPS port", []string{CheckUpstreamDNS}, d.checkTCP)
	d.run(ctx, CheckUpstreamSSHTCP, "TCP reaches the upstream's SSH port", []string{CheckUpstreamDNS}, d.checkSSHTCP)
	d.run(ctx, CheckUpstreamTLS, "the upstream's certificate is valid and trusted", []string{CheckUpstreamTCP}, d.checkTLS)
	d.run(ctx, CheckClock, "the clocks agree with the upstream", []string{CheckUpstreamTLS}, d.checkClock)
	d.run(ctx, CheckRegistration, "the upstream has approved this mirror", []string{CheckUpstreamTLS}, d.checkRegistration)
	d.run(ctx, CheckHostKey, "the upstream's SSH host key matches the pinned one", []string{CheckUpstreamSSHTCP}, d.checkHostKey)
	d.run(ctx, CheckSSHAuth, "SSH authentication with the mirror key succeeds", []string{CheckUpstreamSSHTCP, CheckHostKey}, d.checkSSHAuth)
	d.run(ctx, CheckMirrorBaseURL, "this mirror's base URL answers over HTTPS with a valid certificate", nil, d.checkBaseURL)
	return d.report
}

// errSkip makes a check report itself skipped with the given reason.
type errSkip struct{ reason string }

func (e errSkip) Error() string { return e.reason }

// checkFunc runs one check and returns what it observed, and on failure an error
// and the action to take.
type checkFunc func(ctx context.Context) (observed, action string, err error)

func (d *diag) run(ctx context.Context, name, title string, deps []string, f checkFunc) {
	res := CheckResult{Name: name, Title: title}
	for _, dep := range deps {
		if d.failed[dep] {
			res.Status = CheckSkipped
			res.Observed = "not run: check " + dep + " did not pass"
			d.failed[name] = true
			d.report.Checks = append(d.report.Checks, res)
			return
		}
	}
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	start := time.Now()
	observed, action, err := f(cctx)
	cancel()
	res.Duration = time.Since(start)
	var skip errSkip
	switch {
	case errors.As(err, &skip):
		res.Status, res.Observed = CheckSkipped, skip.reason
		d.failed[name] = true
	case err != nil:
		res.Status, res.Observed, res.Action = CheckFail, observed, action
		if res.Observed == "" {
			res.Observed = err.Error()
		}
		if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			res.Observed += fmt.Sprintf(" (no answer within %s)", d.timeout)
		}
		d.failed[name] = true
	default:
		res.Status, res.Observed = CheckPass, observed
	}
	d.report.Checks = append(d.report.Checks, res)
}

// loadState reads what the mirror stored at setup, if anything.
func (d *diag) loadState() {
	if d.cfg.State == nil {
		return
	}
	ctx := context.Background()
	if id, err := d.cfg.State.Identity(ctx); err == nil {
		d.ident = &id
		if d.cfg.Key != nil {
			d.signer = d.cfg.Key.Signer
		}
	}
	if reg, err := d.cfg.State.Registration(ctx); err == nil {
		d.reg = reg
	}
	if u, err := url.Parse(d.reg.SSHBaseURL); err == nil && u.Hostname() != "" {
		port := u.Port()
		if port == "" {
			port = "22"
		}
		d.sshAddr = net.JoinHostPort(u.Hostname(), port)
	}
}

// keyName names the mirror key for an action: its file when known, else its
// fingerprint.
func (d *diag) keyName() string {
	switch {
	case d.cfg.Key != nil && d.cfg.Key.File != "":
		return "in " + d.cfg.Key.File
	case d.signer != nil:
		return ssh.FingerprintSHA256(d.signer.PublicKey())
	}
	return "(none given)"
}

func (d *diag) name() string {
	if d.ident != nil {
		return d.ident.Setup.DisplayName
	}
	return d.cfg.Setup.DisplayName
}

func (d *diag) upstreamURL() string {
	if d.ident != nil {
		return d.ident.Setup.UpstreamURL
	}
	return d.cfg.Setup.UpstreamURL
}

func (d *diag) baseURL() string {
	if d.ident != nil {
		return d.ident.Setup.BaseURL
	}
	return d.cfg.Setup.BaseURL
}

func (d *diag) checkScheme(ctx context.Context) (string, string, error) {
	raw := d.upstreamURL()
	u, err := parseHTTPSURL(raw)
	if err != nil {
		return fmt.Sprintf("plugin.mirroring.upstream.url is %q", raw),
			"set plugin.mirroring.upstream.url in bitbucket.properties to the upstream's https:// URL (mirrors never use http://)", err
	}
	d.upURL = u
	return fmt.Sprintf("plugin.mirroring.upstream.url is %s", raw), "", nil
}

func (d *diag) checkDNS(ctx context.Context) (string, string, error) {
	host := d.upURL.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		return host + " is an IP address", "", nil
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return fmt.Sprintf("%s does not resolve: %v", host, err),
			"check the host name in plugin.mirroring.upstream.url, and this machine's DNS servers or /etc/hosts", err
	}
	return fmt.Sprintf("%s resolves to %s", host, strings.Join(addrs, ", ")), "", nil
}

func httpsAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// dial tries a TCP connection to addr.
func dial(ctx context.Context, addr string) error {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func (d *diag) checkTCP(ctx context.Context) (string, string, error) {
	addr := httpsAddr(d.upURL)
	if err := dial(ctx, addr); err != nil {
		return fmt.Sprintf("cannot connect to %s: %v", addr, err),
			"check that the upstream is running and that no firewall blocks " + addr + " from this mirror; " +
				"the upstream must also reach this mirror's HTTPS port (" + d.baseURL() + ")", err
	}
	return fmt.Sprintf("connected to %s (the upstream must also reach this mirror's HTTPS port, %s)", addr, d.baseURL()), "", nil
}

func (d *diag) checkSSHTCP(ctx context.Context) (string, string, error) {
	if d.sshAddr == "" {
		return "", "", errSkip{"the upstream's SSH address is learned when the mirror is accepted"}
	}
	if err := dial(ctx, d.sshAddr); err != nil {
		return fmt.Sprintf("cannot connect to the upstream's SSH port %s: %v", d.sshAddr, err),
			"check that the upstream's SSH server is running (plugin.ssh.port) and that no firewall blocks " + d.sshAddr +
				" from this mirror: mirrors fetch over SSH, never HTTP", err
	}
	return "connected to " + d.sshAddr, "", nil
}

func (d *diag) checkTLS(ctx context.Context) (string, string, error) {
	err := CheckHTTPS(ctx, d.upURL.String(), d.cfg.RootCAs, d.now)
	var ce *CertError
	switch {
	case errors.As(err, &ce):
		action := []string{}
		if ce.Has(CertName) {
			action = append(action, "issue the upstream a certificate that names "+d.upURL.Hostname()+", or use the name it has in plugin.mirroring.upstream.url")
		}
		if ce.Has(CertDates) {
			action = append(action, "renew the upstream's certificate, and check both machines' clocks")
		}
		if ce.Has(CertChain) {
			action = append(action, "trust the CA that signed the upstream's certificate: roots come from "+ce.Roots+
				"; or serve the full chain from the upstream")
		}
		return strings.Join(ce.Detail, "; "), strings.Join(action, "; "), err
	case err != nil:
		return err.Error(), "check that the upstream serves HTTPS on " + httpsAddr(d.upURL), err
	}
	return "valid for " + d.upURL.Hostname() + ", within its dates, chained to " + rootsName(d.cfg.RootCAs), "", nil
}

func (d *diag) client() *http.Client { return newHTTPClient(d.cfg.RootCAs, d.now, 0) }

func (d *diag) checkClock(ctx context.Context) (string, string, error) {
	c := d.client()
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(d.upURL.String(), "/")+APIPrefix+"/", nil)
	if err != nil {
		return "", "", err
	}
	sent := d.now()
	resp, err := c.Do(req)
	if err != nil {
		return err.Error(), "check the upstream's HTTPS service", err
	}
	resp.Body.Close()
	got := d.now()
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return "the upstream sent no usable Date header", "", errSkip{"the upstream sent no usable Date header"}
	}
	local := sent.Add(got.Sub(sent) / 2)
	off := local.Sub(date)
	// The Date header has one-second resolution.
	if off > MaxSkew+time.Second || off < -MaxSkew-time.Second {
		return fmt.Sprintf("this mirror's clock is %s %s the upstream's", abs(off).Round(time.Second), aheadBehind(off)),
			fmt.Sprintf("synchronise both clocks (NTP): signed requests are refused beyond %s of skew", MaxSkew), errors.New("clock skew")
	}
	return fmt.Sprintf("clocks differ by %s (limit %s)", abs(off).Round(time.Second), MaxSkew), "", nil
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func aheadBehind(d time.Duration) string {
	if d > 0 {
		return "ahead of"
	}
	return "behind"
}

func (d *diag) api() *apiClient {
	return &apiClient{base: trimSlash(d.upURL.String()), id: d.ident.ID, signer: d.signer, http: d.client(), now: d.now}
}

func (d *diag) checkRegistration(ctx context.Context) (string, string, error) {
	if d.ident == nil || d.signer == nil {
		return "", "", errSkip{"the mirror has not been set up yet (it is set up on its first start)"}
	}
	c := d.api()
	defer c.http.CloseIdleConnections()
	var st StateReply
	_, err := c.call(ctx, http.MethodGet, "/mirrorServers/"+d.ident.ID+"/state", nil, &st)
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		if !d.reg.Registered && d.cfg.JoinToken != "" {
			return "the upstream does not know mirror " + d.ident.ID + ", which is to join a farm with its join token",
				"the upstream refuses a wrong, expired or replaced join token: ask the upstream's administrator for a new one " +
					"(POST /rest/mirroring/1.0/mirrorServers/<farm id>/join-token) and set plugin.mirroring.farm.join-token", err
		}
		if !d.reg.Registered {
			return "the upstream does not know mirror " + d.ident.ID, "start the mirror so that it registers", err
		}
		return "the upstream removed mirror " + d.name() + " (" + d.ident.ID + ")",
			"a removed mirror cannot register again with the same id: remove the mirror's home and start it to register anew", err
	case errors.As(err, &ae) && ae.Status == http.StatusUnauthorized:
		return "the upstream refused the mirror's signed request",
			"check the clocks, and that the mirror key " + d.keyName() + " is the one the mirror registered", err
	case err != nil:
		return err.Error(), "check the upstream's HTTPS service", err
	}
	switch st.State {
	case StateAccepted:
		if st.Farm != "" {
			return fmt.Sprintf("mirror %s is accepted as a node of farm %s (%s%s)", d.name(), st.Farm, st.MirroringMode, projectList(st.Projects)), "", nil
		}
		return fmt.Sprintf("mirror %s is accepted (%s%s)", d.name(), st.MirroringMode, projectList(st.Projects)), "", nil
	case StatePending:
		return "mirror " + d.name() + " is waiting for approval",
			"ask an administrator of the upstream to approve mirror " + d.name(), errors.New("pending")
	case StateRejected:
		return "an administrator of the upstream rejected mirror " + d.name(),
			"ask the upstream's administrators why; to ask again, remove the mirror's home so that it registers with a new id", errors.New("rejected")
	}
	return "unknown state " + string(st.State), "", errors.New("unknown state")
}

func projectList(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return ": " + strings.Join(p, ", ")
}

// sshConfig returns a client config that records the host key offered.
func (d *diag) sshConfig(seen *ssh.PublicKey, auth []ssh.AuthMethod) *ssh.ClientConfig {
	return &ssh.ClientConfig{
		User: "git",
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			*seen = key
			for _, k := range d.reg.HostKeys {
				if k == authorizedLine(key) {
					return nil
				}
			}
			return ErrHostKeyChanged
		},
		Timeout: d.timeout,
	}
}

// handshake connects to the upstream's SSH port and returns the host key seen.
func (d *diag) handshake(ctx context.Context, auth []ssh.AuthMethod) (ssh.PublicKey, error) {
	var seen ssh.PublicKey
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "tcp", d.sshAddr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, d.sshAddr, d.sshConfig(&seen, auth))
	if err != nil {
		return seen, err
	}
	ssh.NewClient(c, chans, reqs).Close()
	return seen, nil
}

func (d *diag) checkHostKey(ctx context.Context) (string, string, error) {
	if len(d.reg.HostKeys) == 0 {
		return "", "", errSkip{"no host key is pinned yet (keys are pinned when the mirror is accepted)"}
	}
	// Authenticate with no method: the host key is checked before authentication.
	seen, err := d.handshake(ctx, nil)
	if seen == nil {
		return fmt.Sprintf("no SSH handshake with %s: %v", d.sshAddr, err), "check the upstream's SSH server", err
	}
	if errors.Is(err, ErrHostKeyChanged) {
		return fmt.Sprintf("%s presents %s, but %s was pinned when the mirror was accepted",
				d.sshAddr, ssh.FingerprintSHA256(seen), fingerprints(d.reg.HostKeys)),
			"confirm the change with the upstream's administrator; if it is expected, trust the new key (Mirror.TrustHostKeys), otherwise something is intercepting the connection", err
	}
	return fmt.Sprintf("%s presents the pinned key %s", d.sshAddr, ssh.FingerprintSHA256(seen)), "", nil
}

func (d *diag) checkSSHAuth(ctx context.Context) (string, string, error) {
	if d.signer == nil {
		return "", "", errSkip{"the mirror has not been set up yet"}
	}
	_, err := d.handshake(ctx, []ssh.AuthMethod{ssh.PublicKeys(d.signer)})
	if err != nil {
		if strings.Contains(err.Error(), "unable to authenticate") {
			return "Permission denied (publickey): the upstream refused the mirror key " + ssh.FingerprintSHA256(d.signer.PublicKey()),
				"the mirror is not approved, or the upstream removed it and its key: ask an administrator of the upstream to check mirror " + d.name(), err
		}
		return err.Error(), "check the upstream's SSH server", err
	}
	return "authenticated as mirror " + d.name() + " with key " + ssh.FingerprintSHA256(d.signer.PublicKey()), "", nil
}

func (d *diag) checkBaseURL(ctx context.Context) (string, string, error) {
	raw := d.baseURL()
	err := CheckHTTPS(ctx, raw, d.cfg.RootCAs, d.now)
	var ce *CertError
	switch {
	case errors.Is(err, ErrNotHTTPS):
		return fmt.Sprintf("setup.baseUrl is %q", raw), "the mirror's base URL must be https://; it can only be set once, so remove the mirror's home to set it up again", err
	case errors.As(err, &ce):
		return strings.Join(ce.Detail, "; "), "give this mirror a valid certificate for its base URL that the upstream trusts: the upstream checks it when accepting the mirror", err
	case err != nil:
		return err.Error(), "serve this mirror's HTTPS on " + raw + " and let the upstream reach it; the upstream checks it when accepting the mirror", err
	}
	return raw + " answers with a valid certificate", "", nil
}
