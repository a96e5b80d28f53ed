//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/node"
)

// readmeMirrorProperties returns the mirror properties the README's "Run a mirror"
// section shows, pointed at this test's primary and mirror ports (the test's
// environment overrides the ports and certificate paths).
func readmeMirrorProperties(t testing.TB, primary *testutil.ServerNode, mirrorHTTPPort int) string {
	t.Helper()
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Run a mirror")
	_, block, ok2 := strings.Cut(section, "```properties\n")
	block, _, ok3 := strings.Cut(block, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no properties block under \"Run a mirror\"")
	}
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	props := strings.Join(lines, "\n")
	props = strings.ReplaceAll(props, "https://localhost:8990", fmt.Sprintf("https://127.0.0.1:%d", mirrorHTTPPort))
	props = strings.ReplaceAll(props, "https://localhost:7990", primary.URL(""))
	if !strings.Contains(props, "application.mode=mirror") || !strings.Contains(props, primary.URL("")) {
		t.Fatalf("unexpected README mirror properties:\n%s", props)
	}
	return props
}

// mirrorStatus reads the mirror's unauthenticated status page.
func mirrorStatus(t testing.TB, m *testutil.ServerNode) node.MirrorStatusJSON {
	t.Helper()
	resp, err := m.Client.Get(m.URL("/rest/mirroring/1.0/status"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st node.MirrorStatusJSON
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil {
		t.Fatalf("mirror status: %d", resp.StatusCode)
	}
	return st
}

// TestMirrorNode runs a primary and a mirror from the built binary over HTTPS
// with a test CA: the mirror registers, the primary's administrator approves it
// through the REST API for one project, the mirror syncs and serves clones over
// SSH with access decided by the primary, follows pushes, refuses pushes naming
// the primary's clone URL, keeps serving across a restart, and refuses to start
// with a changed base URL.
func TestMirrorNode(t *testing.T) {
	ca := testutil.NewCA(t, "gitfleet test CA")
	primary := startNode(t, testutil.ServerOptions{CA: ca})
	g, key := setupUserRepo(t, primary)
	primary.MustAPI(201, "POST", "/rest/api/1.0/projects", map[string]string{"key": "OTHER"})
	primary.MustAPI(201, "POST", "/rest/api/1.0/projects/OTHER/repos", map[string]string{"name": "hidden"})
	work := t.TempDir()
	g.Run(work, "clone", "-q", primary.SSHURL("PROJ", "repo"), "w")
	wt := filepath.Join(work, "w")
	first := g.CommitFile(wt, "a.txt", "a\n", "first")
	g.Run(wt, "push", "-q", "origin", "HEAD:main")

	mport := testutil.FreePort(t)
	mhome := t.TempDir()
	os.MkdirAll(filepath.Join(mhome, "shared"), 0o755)
	testutil.LayoutHome(mhome).WriteProperties(t, readmeMirrorProperties(t, primary, mport))
	mirrorOpts := testutil.ServerOptions{CA: ca, Home: mhome, HTTPPort: mport}
	m := startNode(t, mirrorOpts)
	waitFor(t, func() bool { return mirrorStatus(t, m).State == "PENDING" })
	waitFor(t, func() bool { return strings.Contains(m.Stderr.String(), "/rest/mirroring/1.0/mirrorServers/") })
	// The primary's administrator finds the request and approves it for PROJ.
	var list struct {
		Values []struct{ ID, Name, State string }
	}
	json.Unmarshal(primary.MustAPI(200, "GET", "/rest/mirroring/1.0/mirrorServers", nil), &list)
	if len(list.Values) != 1 || list.Values[0].Name != "mirror-one" || list.Values[0].State != "PENDING" {
		t.Fatalf("mirror requests: %+v", list)
	}
	id := list.Values[0].ID
	primary.MustAPI(200, "POST", "/rest/mirroring/1.0/mirrorServers/"+id+"/accept",
		map[string]any{"mirroringMode": "SELECTED_PROJECTS", "projects": []string{"PROJ"}})

	// The mirror syncs PROJ/repo and serves it to alice, who may read it upstream.
	mg := testutil.NewGit(t)
	mg.SetSSH(key, m.KnownHosts(t, 0))
	murl := m.SSHURL("PROJ", "repo")
	waitFor(t, func() bool {
		out, err := mg.TryRun(work, "ls-remote", murl, "refs/heads/main")
		return err == nil && strings.HasPrefix(out, first)
	})
	mg.Run(work, "clone", "-q", murl, "mc")
	if got := strings.TrimSpace(mg.Run(filepath.Join(work, "mc"), "rev-parse", "HEAD")); got != first {
		t.Fatalf("mirror clone HEAD %s, want %s", got, first)
	}
	// OTHER is not mirrored.
	if _, err := mg.TryRun(work, "ls-remote", m.SSHURL("OTHER", "hidden")); err == nil {
		t.Fatal("the mirror served a project it was not given")
	}
	// A user without read permission on the primary is refused by the mirror.
	bob := testutil.GenerateKey(t, testutil.Ed25519)
	primary.MustAPI(201, "POST", "/rest/ssh/1.0/keys?user=bob", map[string]string{"text": bob.AuthorizedKey})
	bg := testutil.NewGit(t)
	bg.SetSSH(bob, m.KnownHosts(t, 0))
	if _, err := bg.TryRun(work, "ls-remote", murl); err == nil {
		t.Fatal("the mirror served a user the primary does not let read")
	}
	// A push to the primary shows up on the mirror.
	second := g.CommitFile(wt, "b.txt", "b\n", "second")
	g.Run(wt, "push", "-q", "origin", "HEAD:main")
	waitFor(t, func() bool {
		out, err := mg.TryRun(work, "ls-remote", murl, "refs/heads/main")
		return err == nil && strings.HasPrefix(out, second)
	})
	// A push to the mirror is refused, naming the primary's clone URL.
	mc := filepath.Join(work, "mc")
	mg.Run(mc, "pull", "-q", "--ff-only", "origin", "main")
	mg.CommitFile(mc, "c.txt", "c\n", "third")
	_, err := mg.TryRun(mc, "push", "origin", "HEAD:main")
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), primary.SSHURL("PROJ", "repo")) {
		t.Fatalf("push to the mirror: %v", err)
	}
	// The log showed the initial sync's progress.
	waitFor(t, func() bool { return strings.Contains(m.Stderr.String(), `msg="initial sync" repositories=1/1`) })
	// The status page shows the repository in sync.
	st := mirrorStatus(t, m)
	if st.State != "ACCEPTED" || st.Mode != "SELECTED_PROJECTS" || len(st.Repos) != 1 || st.Repos[0].Slug != "repo" {
		t.Fatalf("mirror status %+v", st)
	}

	// The doctor, asked while the mirror runs, finds nothing wrong.
	if code, out := runDiagnose(t, m); code != 0 || strings.Count(out, "PASS") < 10 {
		t.Fatalf("-diagnose on a healthy mirror: exit %d\n%s", code, out)
	}

	// Restarted, the mirror serves at once.
	if err := m.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mirror exit: %v\n%s", err, m.Stderr)
	}
	m2 := startNode(t, testutil.ServerOptions{CA: ca, Home: mhome, Ports: m})
	if out, err := mg.TryRun(work, "ls-remote", murl, "refs/heads/main"); err != nil || !strings.HasPrefix(out, second) {
		t.Fatalf("after restart: %q %v\n%s", out, err, m2.Stderr)
	}
	if err := m2.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mirror exit: %v", err)
	}

	// With the primary gone, the doctor (reading the stopped mirror's database)
	// names the unreachable port and what to do.
	primary.Kill()
	code, out := runDiagnose(t, m2)
	if code != 1 || !regexp.MustCompile(`(?m)^\d+\s+upstream-https-port\s+FAIL`).MatchString(out) {
		t.Fatalf("-diagnose with the primary down: exit %d\n%s", code, out)
	}

	// A changed base URL is refused with the set-once message.
	env := []string{"SETUP_BASEURL=https://localhost:1/"}
	m3 := startNode(t, testutil.ServerOptions{CA: ca, Home: mhome, Env: env, Ports: m, NoWait: true})
	err = m3.Wait()
	if !strings.Contains(m3.Stderr.String(), "can only be set once; remove the mirror's home to set it up again") {
		t.Fatalf("changed base URL: exit %v\n%s", err, m3.Stderr)
	}
}

// TestMirrorRefusesHTTPUpstream: an http:// upstream is refused at startup with
// the https message, and the process exits 1.
func TestMirrorRefusesHTTPUpstream(t *testing.T) {
	ca := testutil.NewCA(t, "gitfleet test CA")
	env := []string{"APPLICATION_MODE=mirror", "SETUP_BASEURL=https://127.0.0.1:1", "PLUGIN_MIRRORING_UPSTREAM_URL=http://127.0.0.1:2"}
	n := startNode(t, testutil.ServerOptions{CA: ca, Env: env, NoWait: true})
	err := n.Wait()
	var ee *exec.ExitError
	if !errorAs(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	if !strings.Contains(n.Stderr.String(), "the primary server URL must include the https:// prefix") {
		t.Fatalf("no https message:\n%s", n.Stderr)
	}
	// The doctor says the same, naming the property.
	code, out := runDiagnose(t, n)
	if code != 1 || !strings.Contains(out, "plugin.mirroring.upstream.url") {
		t.Fatalf("-diagnose with an http upstream: exit %d\n%s", code, out)
	}
}

// runDiagnose runs `server -diagnose` with a node's environment.
func runDiagnose(t *testing.T, n *testutil.ServerNode) (int, string) {
	t.Helper()
	cmd := exec.Command(serverBin, "-home", n.Home, "-diagnose")
	cmd.Env = n.Env
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errorAs(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestMirrorRefusesUntrustedUpstream: an upstream whose certificate the mirror
// does not trust stops the first start, with the doctor's advice on the
// certificate.
func TestMirrorRefusesUntrustedUpstream(t *testing.T) {
	ca := testutil.NewCA(t, "gitfleet test CA")
	primary := startNode(t, testutil.ServerOptions{CA: ca})
	other := testutil.NewCA(t, "some other CA")
	mport := testutil.FreePort(t)
	mhome := t.TempDir()
	os.MkdirAll(filepath.Join(mhome, "shared"), 0o755)
	testutil.LayoutHome(mhome).WriteProperties(t, readmeMirrorProperties(t, primary, mport))
	n := startNode(t, testutil.ServerOptions{CA: ca, Home: mhome, HTTPPort: mport, NoWait: true, Env: []string{"SSL_CERT_FILE=" + other.File}})
	err := n.Wait()
	var ee *exec.ExitError
	if !errorAs(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, n.Stderr)
	}
	logs := n.Stderr.String()
	if !strings.Contains(logs, "the doctor says") || !strings.Contains(logs, "certificate") {
		t.Fatalf("no doctor's advice on the certificate:\n%s", logs)
	}
}
