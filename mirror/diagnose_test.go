package mirror_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// diagnose runs Diagnose on a node's configuration with the given changes.
func diagnose(t *testing.T, p *mirrortest.Primary, n *mirrortest.Node, change func(*mirror.Config)) *mirror.Report {
	t.Helper()
	cfg := mirror.Config{State: n.State, Key: n.Key, RootCAs: p.CA.Pool, CheckTimeout: 5 * time.Second,
		Setup: mirror.SetupConfig{UpstreamURL: p.URL, BaseURL: n.Mirror.Status().BaseURL, DisplayName: n.Mirror.Status().Name}}
	if change != nil {
		change(&cfg)
	}
	r := mirror.Diagnose(context.Background(), cfg)
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", b.String())
	return r
}

// expectCheck fails unless the report's check name has status want and, for a
// failure, an observation and action containing the given words.
func expectCheck(t *testing.T, r *mirror.Report, name string, want mirror.CheckStatus, words ...string) {
	t.Helper()
	c, ok := r.Check(name)
	if !ok {
		t.Fatalf("no check %s", name)
	}
	if c.Status != want {
		t.Fatalf("check %s: %s (%s), want %s", name, c.Status, c.Observed, want)
	}
	for _, w := range words {
		if !strings.Contains(c.Observed+" "+c.Action, w) {
			t.Fatalf("check %s: %q / %q does not mention %q", name, c.Observed, c.Action, w)
		}
	}
	if want == mirror.CheckFail && c.Action == "" {
		t.Fatalf("check %s failed without an action", name)
	}
}

func TestDiagnoseHealthy(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	n := acceptedNode(t, p, "Sydney", mirror.ModeAllProjects)
	r := diagnose(t, p, n, nil)
	if !r.OK() {
		t.Fatal("a healthy mirror's report has failures")
	}
	for _, c := range r.Checks {
		if c.Status != mirror.CheckPass {
			t.Errorf("check %s: %s (%s)", c.Name, c.Status, c.Observed)
		}
	}
	if len(r.Checks) != 10 {
		t.Fatalf("%d checks, want 10", len(r.Checks))
	}
	data, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back mirror.Report
	if err := json.Unmarshal(data, &back); err != nil || len(back.Checks) != 10 || back.Checks[0].Status != mirror.CheckPass {
		t.Fatalf("JSON round trip: %v %s", err, data)
	}
}

func TestDiagnoseFailures(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
	n := acceptedNode(t, p, "Sydney", mirror.ModeAllProjects)
	other := testutil.NewCA(t, "some other CA")
	expired := testutil.StartTLSServer(t, p.CA.Issue(t, testutil.LeafOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}), http.NotFoundHandler())
	wrongName := testutil.StartTLSServer(t, p.CA.Issue(t, testutil.LeafOptions{Names: []string{"primary.example.org"}}), http.NotFoundHandler())
	untrusted := testutil.StartTLSServer(t, other.Issue(t, testutil.LeafOptions{}), http.NotFoundHandler())
	closed := testutil.Listen(t)
	closedURL := "https://" + closed.Addr().String()
	closed.Close()

	// A diagnosis of a mirror set up against url: Diagnose reads the upstream URL
	// from the stored setup, so these use a mirror that was never set up.
	fresh := func(c *mirror.Config, url string) {
		c.State = nil
		c.Setup.UpstreamURL = url
	}
	tests := []struct {
		name   string
		change func(*mirror.Config)
		check  string
		words  []string
		skip   []string
	}{
		{"http URL", func(c *mirror.Config) { fresh(c, strings.Replace(p.URL, "https", "http", 1)) },
			mirror.CheckUpstreamScheme, []string{"plugin.mirroring.upstream.url", "https://"}, []string{mirror.CheckUpstreamDNS, mirror.CheckUpstreamTLS}},
		{"unresolvable host", func(c *mirror.Config) { fresh(c, "https://upstream.invalid:8443") },
			mirror.CheckUpstreamDNS, []string{"does not resolve", "DNS"}, []string{mirror.CheckUpstreamTCP}},
		{"closed port", func(c *mirror.Config) { fresh(c, closedURL) },
			mirror.CheckUpstreamTCP, []string{"cannot connect", "firewall", "must also reach this mirror's HTTPS port"}, []string{mirror.CheckUpstreamTLS, mirror.CheckClock}},
		{"expired certificate", func(c *mirror.Config) { fresh(c, expired.URL) },
			mirror.CheckUpstreamTLS, []string{"expired", "renew"}, []string{mirror.CheckClock}},
		{"wrong name", func(c *mirror.Config) { fresh(c, wrongName.URL) },
			mirror.CheckUpstreamTLS, []string{"not valid for host", "names 127.0.0.1"}, nil},
		{"untrusted CA", func(c *mirror.Config) { fresh(c, untrusted.URL) },
			mirror.CheckUpstreamTLS, []string{"some other CA", "configured root CA pool"}, nil},
		{"untrusted CA, system roots", func(c *mirror.Config) { fresh(c, untrusted.URL); c.RootCAs = nil },
			mirror.CheckUpstreamTLS, []string{"SSL_CERT_FILE", "update-ca-certificates"}, nil},
		{"clock ahead", func(c *mirror.Config) { c.Now = func() time.Time { return time.Now().Add(5 * time.Minute) } },
			mirror.CheckClock, []string{"ahead of", "NTP"}, nil},
		{"mirror base URL down", func(c *mirror.Config) { c.Setup.BaseURL = closedURL; c.State = nil },
			mirror.CheckMirrorBaseURL, []string{"connection refused", "the upstream checks it when accepting"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := diagnose(t, p, n, tc.change)
			expectCheck(t, r, tc.check, mirror.CheckFail, tc.words...)
			for _, s := range tc.skip {
				expectCheck(t, r, s, mirror.CheckSkipped, "not run")
			}
		})
	}
}

func TestDiagnoseRegistrationAndKeys(t *testing.T) {
	t.Run("pending", func(t *testing.T) {
		p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
		n := p.StartNode(t, mirrortest.NodeOptions{Name: "Perth"})
		mirrortest.WaitState(t, n.Mirror, mirror.StatePending)
		r := diagnose(t, p, n, nil)
		expectCheck(t, r, mirror.CheckRegistration, mirror.CheckFail, "ask an administrator of the upstream to approve mirror Perth")
		expectCheck(t, r, mirror.CheckUpstreamSSHTCP, mirror.CheckSkipped, "accepted")
	})

	t.Run("changed host key", func(t *testing.T) {
		p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
		n := acceptedNode(t, p, "Hobart", mirror.ModeAllProjects)
		mirrortest.WaitStatus(t, n.Mirror, "pinned keys", func(s mirror.Status) bool { return len(s.PinnedHostKeys) > 0 })
		p.ChangeSSHHostKeyOnly(t)
		r := diagnose(t, p, n, nil)
		expectCheck(t, r, mirror.CheckHostKey, mirror.CheckFail, "pinned", p.HostKey.Fingerprint(), "TrustHostKeys")
		expectCheck(t, r, mirror.CheckSSHAuth, mirror.CheckSkipped, "not run")
		expectCheck(t, r, mirror.CheckRegistration, mirror.CheckPass)
	})

	t.Run("SSH port closed", func(t *testing.T) {
		p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
		n := acceptedNode(t, p, "Cairns", mirror.ModeAllProjects)
		mirrortest.WaitStatus(t, n.Mirror, "pinned keys", func(s mirror.Status) bool { return len(s.PinnedHostKeys) > 0 })
		p.StopSSH()
		r := diagnose(t, p, n, nil)
		expectCheck(t, r, mirror.CheckUpstreamSSHTCP, mirror.CheckFail, "cannot connect", "plugin.ssh.port", "never HTTP")
		expectCheck(t, r, mirror.CheckHostKey, mirror.CheckSkipped, "not run")
		expectCheck(t, r, mirror.CheckUpstreamTCP, mirror.CheckPass)
	})

	t.Run("removed key", func(t *testing.T) {
		p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{Storage: true})
		n := acceptedNode(t, p, "Darwin", mirror.ModeAllProjects)
		mirrortest.WaitStatus(t, n.Mirror, "pinned keys", func(s mirror.Status) bool { return len(s.PinnedHostKeys) > 0 })
		n.Stop() // so that it does not record the removal itself
		if status, _ := p.Do(t, true, http.MethodDelete, "/mirrorServers/"+n.Mirror.ID(), nil, nil); status != http.StatusNoContent {
			t.Fatal("delete failed")
		}
		db := mirrortest.OpenDB(t, n.Home.DB)
		cfg := mirror.Config{State: mirror.NewBoltState(db), Key: n.Key, RootCAs: p.CA.Pool, CheckTimeout: 5 * time.Second,
			Setup: mirror.SetupConfig{UpstreamURL: p.URL, BaseURL: mirrortest.StartSite(t, p.CA, testutil.LeafOptions{})}}
		r := mirror.Diagnose(context.Background(), cfg)
		expectCheck(t, r, mirror.CheckSSHAuth, mirror.CheckFail, "Permission denied (publickey)", "not approved", "removed")
		expectCheck(t, r, mirror.CheckRegistration, mirror.CheckFail, "removed", "remove the mirror's home")
		expectCheck(t, r, mirror.CheckHostKey, mirror.CheckPass)
	})
}
