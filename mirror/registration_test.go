package mirror_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
	bolt "go.etcd.io/bbolt"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(childURLEnv); url != "" {
		rootsChild(url)
		return
	}
	testutil.VerifyMain(m)
}

// listMirrors returns the administrator's list of mirrors.
func listMirrors(t *testing.T, p *mirrortest.Primary) []mirror.MirrorServer {
	t.Helper()
	var page mirror.Page[mirror.MirrorServer]
	if status, body := p.Do(t, true, http.MethodGet, "/mirrorServers", nil, &page); status != http.StatusOK {
		t.Fatalf("list mirrors: %d %s", status, body)
	}
	return page.Values
}

func TestRegistrationRoundTrip(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	home := testutil.NewHome(t)
	db, err := bolt.Open(home.DB, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := p.NewMirror(t, mirrortest.MirrorOptions{Home: &home, Name: "Sydney", Configure: func(c *mirror.Config) { c.State = mirror.NewBoltState(db) }})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(ctx) }()

	st := mirrortest.WaitState(t, m, mirror.StatePending)
	if st.Name != "Sydney" || st.ID == "" || len(st.PinnedHostKeys) != 0 {
		t.Fatalf("pending status: %+v", st)
	}
	list := listMirrors(t, p)
	if len(list) != 1 || list[0].ID != m.ID() || list[0].State != mirror.StatePending || list[0].Name != "Sydney" {
		t.Fatalf("admin list: %+v", list)
	}
	if _, ok := p.Upstream.MirrorKey(m.PublicKey()); ok {
		t.Fatal("a pending mirror's key was granted access")
	}
	// The key file is private and holds the key the upstream registered.
	fi, err := os.Stat(home.Config + "/" + mirror.KeyFileName)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mirror key file: %v %v", fi, err)
	}

	p.Accept(t, m.ID(), mirror.ModeSelectedProjects, "PROJ")
	st = mirrortest.WaitState(t, m, mirror.StateAccepted)
	wantKey := strings.TrimSpace(strings.SplitN(p.HostKey.AuthorizedKey, " ", 3)[0] + " " + strings.SplitN(p.HostKey.AuthorizedKey, " ", 3)[1])
	if !slices.Equal(st.PinnedHostKeys, []string{wantKey}) || st.Mode != mirror.ModeSelectedProjects ||
		!slices.Equal(st.Projects, []string{"PROJ"}) || st.SSHBaseURL == "" {
		t.Fatalf("accepted status: %+v (want host key %q)", st, wantKey)
	}
	g, ok := p.Upstream.MirrorKey(m.PublicKey())
	if !ok || !g.CanRead("PROJ") || g.CanRead("OTHER") || g.MirrorID != m.ID() {
		t.Fatalf("grant after accept: %+v %v", g, ok)
	}

	// Project selection changes reach the grant at once and the mirror soon.
	if status, body := p.Do(t, true, http.MethodPut, "/mirrorServers/"+m.ID()+"/projects/OTHER", nil, nil); status != http.StatusOK {
		t.Fatalf("add project: %d %s", status, body)
	}
	if g, _ := p.Upstream.MirrorKey(m.PublicKey()); !g.CanRead("OTHER") {
		t.Fatal("added project not readable")
	}
	mirrortest.WaitStatus(t, m, "projects OTHER,PROJ", func(s mirror.Status) bool {
		return slices.Equal(s.Projects, []string{"OTHER", "PROJ"})
	})
	if status, body := p.Do(t, true, http.MethodDelete, "/mirrorServers/"+m.ID()+"/projects/PROJ", nil, nil); status != http.StatusOK {
		t.Fatalf("remove project: %d %s", status, body)
	}
	if g, _ := p.Upstream.MirrorKey(m.PublicKey()); g.CanRead("PROJ") {
		t.Fatal("removed project still readable")
	}
	// The view shows what an administrator compares before authorizing.
	var view mirror.MirrorServer
	if status, body := p.Do(t, true, http.MethodGet, "/mirrorServers/"+m.ID(), nil, &view); status != http.StatusOK ||
		view.Fingerprint == "" || !strings.HasPrefix(view.Fingerprint, "SHA256:") || view.Created.IsZero() {
		t.Fatalf("mirror view: %d %s", status, body)
	}
	// Mirroring all projects widens the grant for good.
	if status, body := p.Do(t, true, http.MethodPost, "/mirrorServers/"+m.ID()+"/all-projects", nil, nil); status != http.StatusOK {
		t.Fatalf("all projects: %d %s", status, body)
	}
	if g, _ := p.Upstream.MirrorKey(m.PublicKey()); !g.CanRead("ANY") || g.Mode != mirror.ModeAllProjects {
		t.Fatalf("grant after all projects: %+v", g)
	}
	if status, body := p.Do(t, true, http.MethodPut, "/mirrorServers/"+m.ID()+"/projects/PROJ", nil, nil); status != http.StatusConflict {
		t.Fatalf("narrowing after all projects: %d %s", status, body)
	}

	// Delete: access is revoked at once and the mirror learns it was removed.
	if status, body := p.Do(t, true, http.MethodDelete, "/mirrorServers/"+m.ID(), nil, nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	if _, ok := p.Upstream.MirrorKey(m.PublicKey()); ok {
		t.Fatal("a removed mirror's key is still granted access")
	}
	mirrortest.WaitState(t, m, mirror.StateRemoved)
	if status, _ := p.Do(t, true, http.MethodGet, "/mirrorServers/"+m.ID(), nil, nil); status != http.StatusNotFound {
		t.Fatalf("get removed mirror: %d", status)
	}

	// Restarted with the same home, the mirror stays removed and the upstream
	// refuses its id.
	cancel()
	<-runDone
	m.Close()
	db.Close()
	db2 := mirrortest.OpenDB(t, home.DB)
	m2 := p.NewMirror(t, mirrortest.MirrorOptions{Home: &home, Name: "Sydney", BaseURL: st.BaseURL,
		Configure: func(c *mirror.Config) { c.State = mirror.NewBoltState(db2) }})
	if m2.ID() != m.ID() {
		t.Fatalf("restart changed the id: %s -> %s", m.ID(), m2.ID())
	}
	if s := m2.Status(); s.State != mirror.StateRemoved {
		t.Fatalf("restarted mirror state: %+v", s)
	}
	mirrortest.Run(t, m2)
	time.Sleep(100 * time.Millisecond)
	if s := m2.Status(); s.State != mirror.StateRemoved || len(listMirrors(t, p)) != 0 {
		t.Fatalf("restarted removed mirror re-registered: %+v, list %+v", s, listMirrors(t, p))
	}
	status, body := mirrortest.SignedDo(t, p, m2.ID(), mirrortest.KeyOf(t, home), http.MethodPost, "/mirrorServers",
		mirror.RegisterRequest{ID: m2.ID(), Name: "Sydney", BaseURL: st.BaseURL, PublicKey: mirrortest.PublicLine(m2.PublicKey())})
	if status != http.StatusConflict || !strings.Contains(string(body), "removed") {
		t.Fatalf("re-register removed id: %d %s", status, body)
	}

	// With its home reset, the mirror registers anew with a new id.
	m3 := p.NewMirror(t, mirrortest.MirrorOptions{Name: "Sydney"})
	mirrortest.Run(t, m3)
	mirrortest.WaitState(t, m3, mirror.StatePending)
	if m3.ID() == m.ID() {
		t.Fatal("reset home kept the id")
	}
}

func TestRejectAndAllProjects(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	rejected := p.NewMirror(t, mirrortest.MirrorOptions{Name: "rejected"})
	all := p.NewMirror(t, mirrortest.MirrorOptions{Name: "all"})
	mirrortest.Run(t, rejected)
	mirrortest.Run(t, all)
	mirrortest.WaitState(t, rejected, mirror.StatePending)
	mirrortest.WaitState(t, all, mirror.StatePending)

	if status, body := p.Do(t, true, http.MethodPost, "/mirrorServers/"+rejected.ID()+"/reject", nil, nil); status != http.StatusOK {
		t.Fatalf("reject: %d %s", status, body)
	}
	st := mirrortest.WaitState(t, rejected, mirror.StateRejected)
	if len(st.PinnedHostKeys) != 0 {
		t.Fatalf("rejected mirror got host keys: %+v", st)
	}
	if _, ok := p.Upstream.MirrorKey(rejected.PublicKey()); ok {
		t.Fatal("a rejected mirror's key was granted access")
	}
	status, _ := p.Do(t, true, http.MethodPost, "/mirrorServers/"+rejected.ID()+"/accept",
		mirror.AcceptRequest{MirroringMode: mirror.ModeAllProjects}, nil)
	if status != http.StatusConflict {
		t.Fatalf("accept after reject: %d", status)
	}

	p.Accept(t, all.ID(), mirror.ModeAllProjects)
	mirrortest.WaitState(t, all, mirror.StateAccepted)
	if g, ok := p.Upstream.MirrorKey(all.PublicKey()); !ok || !g.CanRead("ANY") {
		t.Fatalf("all-projects grant: %+v %v", g, ok)
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodPut, "/projects/PROJ"},
		{http.MethodDelete, "/projects/PROJ"},
	} {
		status, body := p.Do(t, true, tc.method, "/mirrorServers/"+all.ID()+tc.path, nil, nil)
		if status != http.StatusConflict || !strings.Contains(string(body), "cannot be narrowed") {
			t.Errorf("%s %s on ALL_PROJECTS: %d %s", tc.method, tc.path, status, body)
		}
	}
	status, _ = p.Do(t, true, http.MethodPost, "/mirrorServers/"+all.ID()+"/accept",
		mirror.AcceptRequest{MirroringMode: mirror.ModeSelectedProjects, Projects: []string{"PROJ"}}, nil)
	if status != http.StatusConflict {
		t.Fatalf("re-accept as selected: %d", status)
	}
	if g, _ := p.Upstream.MirrorKey(all.PublicKey()); g.Mode != mirror.ModeAllProjects {
		t.Fatalf("mode narrowed: %+v", g)
	}
}

func TestAdminCallsNeedAdmin(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	id := "0b8a7a2e-8f5e-4c57-9a57-3f6f2f4e0d11"
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/mirrorServers"},
		{http.MethodGet, "/mirrorServers/" + id},
		{http.MethodDelete, "/mirrorServers/" + id},
		{http.MethodPost, "/mirrorServers/" + id + "/accept"},
		{http.MethodPost, "/mirrorServers/" + id + "/reject"},
		{http.MethodPut, "/mirrorServers/" + id + "/projects/PROJ"},
		{http.MethodDelete, "/mirrorServers/" + id + "/projects/PROJ"},
		{http.MethodPost, "/mirrorServers/" + id + "/all-projects"},
	} {
		if status, _ := p.Do(t, false, tc.method, tc.path, nil, nil); status != http.StatusForbidden {
			t.Errorf("anonymous %s %s: %d, want 403", tc.method, tc.path, status)
		}
		if status, _ := p.Do(t, true, tc.method, tc.path, nil, nil); status == http.StatusForbidden {
			t.Errorf("admin %s %s: 403", tc.method, tc.path)
		}
	}
}

func TestAcceptChecksMirrorCertificate(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	other := testutil.NewCA(t, "some other CA")
	tests := []struct {
		name, site, want string
	}{
		{"expired", mirrortest.StartSite(t, p.CA, testutil.LeafOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}), "expired"},
		{"wrong name", mirrortest.StartSite(t, p.CA, testutil.LeafOptions{Names: []string{"mirror.example.org"}}), "not valid for host"},
		{"untrusted CA", mirrortest.StartSite(t, other, testutil.LeafOptions{}), "not trusted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := p.NewMirror(t, mirrortest.MirrorOptions{BaseURL: tc.site})
			mirrortest.Run(t, m)
			mirrortest.WaitState(t, m, mirror.StatePending)
			status, body := p.Do(t, true, http.MethodPost, "/mirrorServers/"+m.ID()+"/accept",
				mirror.AcceptRequest{MirroringMode: mirror.ModeAllProjects}, nil)
			if status != http.StatusUnprocessableEntity || !strings.Contains(string(body), tc.want) {
				t.Fatalf("accept: %d %s, want 422 naming %q", status, body, tc.want)
			}
			if _, ok := p.Upstream.MirrorKey(m.PublicKey()); ok {
				t.Fatal("refused mirror was granted access")
			}
			if s := m.Status(); s.State != mirror.StatePending {
				t.Fatalf("state after refused accept: %s", s.State)
			}
		})
	}
}

func TestSetupFailures(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	other := testutil.NewCA(t, "some other CA")
	expired := testutil.StartTLSServer(t, p.CA.Issue(t, testutil.LeafOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}), http.NotFoundHandler())
	wrongName := testutil.StartTLSServer(t, p.CA.Issue(t, testutil.LeafOptions{Names: []string{"primary.example.org"}}), http.NotFoundHandler())
	untrusted := testutil.StartTLSServer(t, other.Issue(t, testutil.LeafOptions{}), http.NotFoundHandler())
	tests := []struct {
		name     string
		upstream string
		baseURL  string
		check    mirror.CertCheck
		want     string
	}{
		{"http upstream", strings.Replace(p.URL, "https://", "http://", 1), "", "", "plugin.mirroring.upstream.url"},
		{"http base URL", p.URL, "http://127.0.0.1:1", "", "setup.baseUrl"},
		{"expired certificate", expired.URL, "", mirror.CertDates, "expired"},
		{"wrong host name", wrongName.URL, "", mirror.CertName, "not valid for host \"127.0.0.1\""},
		{"untrusted CA", untrusted.URL, "", mirror.CertChain, "\"some other CA\", which is not trusted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, home := p.MirrorConfig(t, mirrortest.MirrorOptions{BaseURL: tc.baseURL})
			cfg.Setup.UpstreamURL = tc.upstream
			cfg.State = mirror.NewBoltState(mirrortest.OpenDB(t, home.DB))
			key, err := mirror.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			cfg.Key = key
			m, err := mirror.Open(context.Background(), cfg)
			if err == nil {
				m.Close()
				t.Fatal("setup succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
			var ce *mirror.CertError
			if tc.check != "" && (!errors.As(err, &ce) || !ce.Has(tc.check)) {
				t.Fatalf("error %v is not a CertError failing %s", err, tc.check)
			}
			if _, err := os.Stat(home.Config + "/" + mirror.KeyFileName); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("refused setup wrote a key: %v", err)
			}
		})
	}
}

func TestSetupAppliesOnce(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	cfg, home := p.MirrorConfig(t, mirrortest.MirrorOptions{Name: "first"})
	open := func(c mirror.Config) (*mirror.Mirror, error) {
		db, err := bolt.Open(home.DB, 0o600, &bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		c.State = mirror.NewBoltState(db)
		if c.Key, err = mirror.LoadOrCreateKey(gitfleet.Home(home.Dir)); err != nil {
			db.Close()
			return nil, err
		}
		m, err := mirror.Open(context.Background(), c)
		if err == nil {
			m.Close()
		}
		db.Close()
		return m, err
	}
	m1, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	renamed := cfg
	renamed.Setup.DisplayName = "second"
	m2, err := open(renamed)
	if err != nil || m2.ID() != m1.ID() || m2.Status().Name != "first" {
		t.Fatalf("reopen with another display name: %v (id %s vs %s)", err, m2.ID(), m1.ID())
	}
	moved := cfg
	moved.Setup.BaseURL = mirrortest.StartSite(t, p.CA, testutil.LeafOptions{})
	_, err = open(moved)
	var sce *mirror.SetupChangedError
	if !errors.As(err, &sce) || !strings.Contains(err.Error(), "the mirror base URL can only be set once; remove the mirror's home to set it up again") {
		t.Fatalf("changed base URL: %v", err)
	}
	other := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{CA: p.CA})
	reupstream := cfg
	reupstream.Setup.UpstreamURL = other.URL
	if _, err := open(reupstream); !errors.As(err, &sce) || sce.Property != "plugin.mirroring.upstream.url" {
		t.Fatalf("changed upstream: %v", err)
	}
	// A key file others can read is refused.
	if err := os.Chmod(home.Config+"/"+mirror.KeyFileName, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := open(cfg); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable key: %v", err)
	}
}

// TestPendingMirrorLearnsDecisionAtOnce: a pending mirror's state poll waits at the
// upstream for the administrator's decision, so approval, rejection and removal
// reach mirrors whose poll interval is ten minutes without waiting for it.
func TestPendingMirrorLearnsDecisionAtOnce(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	slow := func(c *mirror.Config) {
		c.PollInterval, c.MaxPollInterval, c.EventWait = 10*time.Minute, 10*time.Minute, 10*time.Minute
	}
	var ms []*mirror.Mirror
	for _, name := range []string{"accepted", "rejected", "removed"} {
		m := p.NewMirror(t, mirrortest.MirrorOptions{Name: name, Configure: slow})
		mirrortest.Run(t, m)
		mirrortest.WaitState(t, m, mirror.StatePending)
		ms = append(ms, m)
	}
	// Each mirror is now inside its first long poll (it polls at once after
	// registering); the next poll by interval would be ten minutes away.
	p.Accept(t, ms[0].ID(), mirror.ModeAllProjects)
	if st := mirrortest.WaitState(t, ms[0], mirror.StateAccepted); len(st.PinnedHostKeys) == 0 {
		t.Fatalf("accepted without pinned host keys: %+v", st)
	}
	if status, body := p.Do(t, true, http.MethodPost, "/mirrorServers/"+ms[1].ID()+"/reject", nil, nil); status != http.StatusOK {
		t.Fatalf("reject: %d %s", status, body)
	}
	mirrortest.WaitState(t, ms[1], mirror.StateRejected)
	if status, body := p.Do(t, true, http.MethodDelete, "/mirrorServers/"+ms[2].ID(), nil, nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, body)
	}
	mirrortest.WaitState(t, ms[2], mirror.StateRemoved)
}
