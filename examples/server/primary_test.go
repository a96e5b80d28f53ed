//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestFirstStartSequenceVerbatim starts a fresh node configured only through the
// environment and runs the "next steps" it prints, as printed, with bash, curl,
// OpenSSH and git: create a project and a repository, add ~/.ssh/*.pub, grant
// write, pin the host key, push, clone.
func TestFirstStartSequenceVerbatim(t *testing.T) {
	testutil.Require(t, "curl")
	testutil.Require(t, "ssh-keyscan")
	n := startNode(t, testutil.ServerOptions{})
	out := n.Stdout.String()
	start := strings.Index(out, "ADMIN=")
	end := strings.Index(out, "my-repo-copy\n")
	if start < 0 || end < 0 {
		t.Fatalf("first start did not print the next steps:\n%s", out)
	}
	script := out[start : end+len("my-repo-copy\n")]
	if st, err := os.Stat(filepath.Join(n.Home, "shared", "config", "admin-password")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin password file: %v %v", st, err)
	}
	if u, p := n.AdminCreds(); !strings.Contains(out, p) || u != "admin" {
		t.Fatal("the generated password was not printed")
	} else if db, err := os.ReadFile(filepath.Join(n.Home, "shared", "data", "gitfleet.db")); err != nil || strings.Contains(string(db), p) {
		t.Fatalf("the database holds the password in clear (or cannot be read: %v)", err)
	}

	user := testutil.GenerateKey(t, testutil.Ed25519)
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := user.WriteTo(filepath.Join(home, ".ssh")); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = work
	// ssh takes ~/.ssh from the password database, not $HOME: point it at the
	// test's home explicitly; the script itself runs unchanged.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "USER=alice",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_SSH_COMMAND=" + testutil.SSHCommand(user.Path, filepath.Join(home, ".ssh", "known_hosts")),
		"GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com",
	}
	if outb, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the printed sequence failed: %v\n%s\nscript:\n%s\nserver log:\n%s", err, outb, script, n.Stderr)
	}
	readme, err := os.ReadFile(filepath.Join(work, "my-repo-copy", "README.md"))
	if err != nil || string(readme) != "hello\n" {
		t.Fatalf("clone after push: README.md = %q, %v", readme, err)
	}
	// The README quotes the same sequence for the default ports.
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`1\d{4}|[2-6]\d{4}`).ReplaceAllStringFunc(script, func(p string) string {
		switch p {
		case fmt.Sprint(n.HTTPPort):
			return "7990"
		case fmt.Sprint(n.SSHPort):
			return "7999"
		}
		return p
	})
	want = strings.ReplaceAll(want, filepath.Join(n.Home, "shared", "config", "admin-password"), "gitfleet-home/shared/config/admin-password")
	want = strings.ReplaceAll(want, "127.0.0.1", "localhost") // the test binds loopback; the default binds all addresses
	if !strings.Contains(string(doc), want) {
		t.Errorf("README.md does not quote the first-start sequence; it should contain:\n%s", want)
	}
}

func TestVersionCheckConfigAndDump(t *testing.T) {
	home := t.TempDir()
	run := func(env []string, args ...string) (int, string, string) {
		cmd := exec.Command(serverBin, append([]string{"-home", home}, args...)...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		var so, se testutil.LockedBuffer
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, so.String(), se.String()
	}
	if code, out, _ := run(nil, "-version"); code != 0 || !strings.HasPrefix(out, "gitfleet server ") {
		t.Fatalf("-version: %d %q", code, out)
	}
	if code, out, _ := run(nil, "-check-config"); code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("-check-config without a file: %d %q", code, out)
	}
	shared := filepath.Join(home, "shared")
	os.MkdirAll(shared, 0o755)
	propsFile := filepath.Join(shared, "bitbucket.properties")
	os.WriteFile(propsFile, []byte("# a node\nserver.port=99999\napplication.mode=mirror\nsetup.displayName=${name}\nplugin.bitbucket-git.mesh.sidecar.defualt-port=7778\n"), 0o644)
	code, out, _ := run(nil, "-check-config")
	if code != 1 {
		t.Fatalf("-check-config with errors exited %d:\n%s", code, out)
	}
	for _, want := range []string{"server.port", "bitbucket.properties:2", "bitbucket.properties:5", "setup.baseUrl", "plugin.mirroring.upstream.url", "default-port"} {
		if !strings.Contains(out, want) {
			t.Errorf("-check-config output lacks %q:\n%s", want, out)
		}
	}
	// -dump-properties prints raw values even when validation fails, and the
	// environment overrides the file.
	code, out, errOut := run([]string{"SERVER_PORT=8000"}, "-dump-properties")
	if code != 0 {
		t.Fatalf("-dump-properties exited %d: %s", code, errOut)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("-dump-properties output is not a JSON object: %v\n%s", err, out)
	}
	if got["server.port"] != "8000" || got["setup.displayName"] != "${name}" || got["application.mode"] != "mirror" {
		t.Fatalf("-dump-properties = %v", got)
	}
	if _, ok := got["plugin.ssh.port"]; ok {
		t.Fatalf("-dump-properties added a default: %v", got)
	}
	if !strings.Contains(errOut, "setup.baseUrl") {
		t.Errorf("validation problems not reported on stderr: %q", errOut)
	}
	// A file Java would reject: exit non-zero naming file:line.
	os.WriteFile(propsFile, []byte("a=1\nb=\\u12G4\n"), 0o644)
	code, _, errOut = run(nil, "-dump-properties")
	if code == 0 || !strings.Contains(errOut, "bitbucket.properties:2") {
		t.Fatalf("-dump-properties on a bad file: exit %d, %q", code, errOut)
	}
	// The server itself refuses to start on errors, listing them.
	os.WriteFile(propsFile, []byte("server.port=0\n"), 0o644)
	code, _, errOut = run(nil)
	if code != 1 || !strings.Contains(errOut, "server.port") {
		t.Fatalf("start with an invalid port: exit %d, %q", code, errOut)
	}
}

func TestRESTAPI(t *testing.T) {
	n := startNode(t, testutil.ServerOptions{})
	// Authentication.
	req := func(user, pass string) int {
		r, _ := httpNewRequest("GET", n.URL("/rest/api/1.0/projects"), user, pass)
		return r
	}
	u, p := n.AdminCreds()
	if got := req(u, p+"x"); got != 401 {
		t.Fatalf("wrong password: %d", got)
	}
	if got := req("", ""); got != 401 {
		t.Fatalf("no credentials: %d", got)
	}
	cases := []struct {
		method, path string
		body         any
		status       int
		errContains  string
	}{
		{"POST", "/rest/api/1.0/projects", `{"key":"PROJ"`, 400, "invalid JSON"},
		{"POST", "/rest/api/1.0/projects", `{"key":"PROJ","colour":"red"}`, 400, "unknown field"},
		{"POST", "/rest/api/1.0/projects", map[string]string{"key": "proj"}, 400, "project key"},
		{"POST", "/rest/api/1.0/projects", map[string]string{"key": "PROJ", "name": "P"}, 201, ""},
		{"POST", "/rest/api/1.0/projects", map[string]string{"key": "PROJ", "name": "P"}, 409, "already exists"},
		{"POST", "/rest/api/1.0/projects/NOPE/repos", map[string]string{"name": "x"}, 404, "does not exist"},
		{"POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": "!!!"}, 400, "slug"},
		{"POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": "My Repo"}, 201, ""},
		{"POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": "my repo"}, 409, "already exists"},
		{"GET", "/rest/api/1.0/projects/PROJ/repos/my-repo", nil, 200, ""},
		{"GET", "/rest/api/1.0/projects/PROJ/repos/none", nil, 404, ""},
		{"POST", "/rest/ssh/1.0/keys?user=bob", map[string]string{"text": "ssh-ed25519 AAAAnotakey"}, 400, "not an SSH public key"},
		{"POST", "/rest/ssh/1.0/keys?user=bob", map[string]string{"text": testutil.GenerateKey(t, testutil.RSA1024).AuthorizedKey}, 400, "2048"},
		{"POST", "/rest/ssh/1.0/keys?user=bob", map[string]string{"text": testutil.GenerateKey(t, testutil.DSA).AuthorizedKey}, 400, "DSA"},
		{"POST", "/rest/ssh/1.0/keys?user=", map[string]string{"text": "x"}, 400, "user name"},
		{"PUT", "/rest/api/1.0/projects/PROJ/permissions/users?name=bob&permission=ADMIN", nil, 400, "PROJECT_READ"},
		{"PUT", "/rest/api/1.0/projects/NOPE/permissions/users?name=bob&permission=PROJECT_READ", nil, 404, ""},
		{"DELETE", "/rest/ssh/1.0/keys/12345", nil, 404, ""},
		{"GET", "/rest/api/1.0/nothing-here", nil, 404, ""},
	}
	for _, c := range cases {
		status, body := restCall(t, n, c.method, c.path, c.body)
		if status != c.status {
			t.Errorf("%s %s: status %d, want %d: %s", c.method, c.path, status, c.status, body)
			continue
		}
		if c.errContains != "" {
			var e struct {
				Errors []struct{ Message string } `json:"errors"`
			}
			if json.Unmarshal(body, &e) != nil || len(e.Errors) != 1 || !strings.Contains(e.Errors[0].Message, c.errContains) {
				t.Errorf("%s %s: error body %s does not mention %q", c.method, c.path, body, c.errContains)
			}
		}
	}
	// The repository's clone link, and a page of repositories.
	var repo repoJSON
	json.Unmarshal(n.MustAPI(200, "GET", "/rest/api/1.0/projects/PROJ/repos/my-repo", nil), &repo)
	if want := fmt.Sprintf("ssh://git@127.0.0.1:%d/proj/my-repo.git", n.SSHPort); len(repo.Links["clone"]) != 1 || repo.Links["clone"][0].Href != want {
		t.Fatalf("clone links %v, want %s", repo.Links, want)
	}
	for i := 0; i < 4; i++ {
		n.MustAPI(201, "POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": fmt.Sprintf("r%d", i)})
	}
	var pg page[repoJSON]
	json.Unmarshal(n.MustAPI(200, "GET", "/rest/api/1.0/projects/PROJ/repos?start=1&limit=2", nil), &pg)
	if pg.Size != 2 || pg.IsLastPage || pg.Start != 1 || pg.Limit != 2 || pg.Values[0].Slug != "r0" || *pg.NextPageStart != 3 {
		t.Fatalf("page = %+v", pg)
	}
	// A user key: listed, then a second registration of the same key conflicts,
	// also as an access key.
	key := testutil.GenerateKey(t, testutil.Ed25519)
	var k sshKey
	json.Unmarshal(n.MustAPI(201, "POST", "/rest/ssh/1.0/keys?user=bob", map[string]string{"text": key.AuthorizedKey}), &k)
	if k.ID == 0 || k.Fingerprint != key.Fingerprint() || k.User != "bob" {
		t.Fatalf("key reply %+v", k)
	}
	n.MustAPI(409, "POST", "/rest/ssh/1.0/keys?user=carol", map[string]string{"text": key.AuthorizedKey})
	n.MustAPI(409, "POST", "/rest/keys/1.0/projects/PROJ/repos/my-repo/ssh", map[string]any{"key": map[string]string{"text": key.AuthorizedKey}, "permission": "REPO_READ"})
	var keys page[sshKey]
	json.Unmarshal(n.MustAPI(200, "GET", "/rest/ssh/1.0/keys?user=bob", nil), &keys)
	if keys.Size != 1 || keys.Values[0].ID != k.ID {
		t.Fatalf("keys of bob: %+v", keys)
	}
	n.MustAPI(204, "DELETE", fmt.Sprintf("/rest/ssh/1.0/keys/%d", k.ID), nil)
	json.Unmarshal(n.MustAPI(200, "GET", "/rest/ssh/1.0/keys?user=bob", nil), &keys)
	if keys.Size != 0 {
		t.Fatalf("deleted key still listed: %+v", keys)
	}
	// Delete a repository: gone from the API and from the store.
	n.MustAPI(204, "DELETE", "/rest/api/1.0/projects/PROJ/repos/r0", nil)
	n.MustAPI(404, "GET", "/rest/api/1.0/projects/PROJ/repos/r0", nil)
	if _, err := os.Stat(filepath.Join(n.Home, "shared", "data", "repositories", "PROJ", "r0.git")); !os.IsNotExist(err) {
		t.Fatalf("deleted repository still on disk: %v", err)
	}
	var mesh map[string]any
	json.Unmarshal(n.MustAPI(200, "GET", "/rest/api/1.0/admin/mesh", nil), &mesh)
	if mesh["state"] == nil {
		t.Fatalf("mesh state: %v", mesh)
	}
}

func TestSSHPermissions(t *testing.T) {
	n := startNode(t, testutil.ServerOptions{})
	g, _ := setupUserRepo(t, n)
	url := n.SSHURL("PROJ", "repo")
	work := t.TempDir()
	g.Run(work, "clone", "-q", url, "w")
	g.CommitFile(filepath.Join(work, "w"), "a.txt", "a\n", "first")
	g.Run(filepath.Join(work, "w"), "push", "-q", "origin", "HEAD:main")

	// A read-only user can clone and cannot push.
	reader := testutil.GenerateKey(t, testutil.ECDSA256)
	n.MustAPI(201, "POST", "/rest/ssh/1.0/keys?user=rita", map[string]string{"text": reader.AuthorizedKey})
	n.MustAPI(204, "PUT", "/rest/api/1.0/projects/PROJ/permissions/users?name=rita&permission=PROJECT_READ", nil)
	gr := testutil.NewGit(t)
	gr.SetSSH(reader, n.KnownHosts(t, 0))
	gr.Run(work, "clone", "-q", url, "r")
	gr.CommitFile(filepath.Join(work, "r"), "b.txt", "b\n", "second")
	if out, err := gr.TryRun(filepath.Join(work, "r"), "push", "origin", "HEAD:main"); err == nil || !strings.Contains(err.Error(), "Repository not found") {
		t.Fatalf("read-only push: %v %s", err, out)
	}
	// A user without permission sees "not found", like a missing repository.
	stranger := testutil.GenerateKey(t, testutil.Ed25519)
	n.MustAPI(201, "POST", "/rest/ssh/1.0/keys?user=sam", map[string]string{"text": stranger.AuthorizedKey})
	gs := testutil.NewGit(t)
	gs.SetSSH(stranger, n.KnownHosts(t, 0))
	for _, u := range []string{url, n.SSHURL("PROJ", "missing")} {
		if _, err := gs.TryRun(work, "ls-remote", u); err == nil || !strings.Contains(err.Error(), "Repository not found") {
			t.Fatalf("ls-remote %s without permission: %v", u, err)
		}
	}
	// An unknown key is refused at authentication.
	unknown := testutil.GenerateKey(t, testutil.Ed25519)
	gu := testutil.NewGit(t)
	gu.SetSSH(unknown, n.KnownHosts(t, 0))
	if _, err := gu.TryRun(work, "ls-remote", url); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("unknown key: %v", err)
	}
	// A repository access key with REPO_READ reads that repository only.
	ak := testutil.GenerateKey(t, testutil.Ed25519)
	n.MustAPI(201, "POST", "/rest/keys/1.0/projects/PROJ/repos/repo/ssh", map[string]any{"key": map[string]string{"text": ak.AuthorizedKey, "label": "ci"}, "permission": "REPO_READ"})
	ga := testutil.NewGit(t)
	ga.SetSSH(ak, n.KnownHosts(t, 0))
	if out := ga.Run(work, "ls-remote", url); !strings.Contains(out, "refs/heads/main") {
		t.Fatalf("access key ls-remote: %q", out)
	}
	n.MustAPI(201, "POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": "other"})
	if _, err := ga.TryRun(work, "ls-remote", n.SSHURL("PROJ", "other")); err == nil {
		t.Fatal("access key read another repository")
	}
	// whoami names the principal.
	c := testutil.NewSSH(t, "git", "127.0.0.1", n.SSHPort, reader, n.KnownHosts(t, 0))
	if out, _, err := c.Run("whoami"); err != nil || strings.TrimSpace(out) != "rita" {
		t.Fatalf("whoami = %q, %v", out, err)
	}
	// Identical clones over SSH (protocol v2): by the second or third, a
	// session is answered whole from the sidecar's response cache, without
	// git.
	metric := func(name string) int64 {
		metrics := string(n.MustAPI(200, "GET", "/metrics", nil))
		for _, line := range strings.Split(metrics, "\n") {
			if v, ok := strings.CutPrefix(line, "gitfleet_pack_cache_"+name+" "); ok {
				x, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("/metrics: %q", line)
				}
				return x
			}
		}
		t.Fatalf("/metrics has no gitfleet_pack_cache_%s:\n%s", name, metrics)
		return 0
	}
	gitless0 := metric("sessions_without_git_total")
	for i := range 5 { // a clone's answers are kept just after their last byte is sent
		dir := fmt.Sprintf("rc%d.git", i)
		g.Run(work, "-c", "protocol.version=2", "clone", "-q", "--bare", url, dir)
		g.Run(filepath.Join(work, dir), "fsck", "--strict")
		if metric("sessions_without_git_total") > gitless0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The clones went through the sidecar's pack cache, whose counters /metrics shows.
	if metric("enabled") != 1 || metric("misses_total") == 0 || metric("response_hits_total") == 0 || metric("list_hits_total") == 0 ||
		metric("sessions_without_git_total") == gitless0 {
		t.Fatalf("/metrics:\n%s", n.MustAPI(200, "GET", "/metrics", nil))
	}
}

// TestRestartKeepsState restarts a node and finds projects, repositories, keys
// and permissions as they were; then kills it with SIGKILL during a burst of REST
// writes and finds a consistent database after the next start.
func TestRestartKeepsState(t *testing.T) {
	n := startNode(t, testutil.ServerOptions{})
	g, _ := setupUserRepo(t, n)
	work := t.TempDir()
	g.Run(work, "clone", "-q", n.SSHURL("PROJ", "repo"), "w")
	head := g.CommitFile(filepath.Join(work, "w"), "a.txt", "a\n", "first")
	g.Run(filepath.Join(work, "w"), "push", "-q", "origin", "HEAD:main")
	if err := n.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM exit: %v\n%s", err, n.Stderr)
	}

	n2 := startNode(t, testutil.ServerOptions{Home: n.Home, Ports: n})
	if out := g.Run(work, "ls-remote", n2.SSHURL("PROJ", "repo"), "refs/heads/main"); !strings.HasPrefix(out, head) {
		t.Fatalf("after restart ls-remote = %q, want %s", out, head)
	}
	if strings.Contains(n2.Stdout.String(), "ADMIN=") {
		t.Fatal("second start printed first-start steps again")
	}

	// A burst of writes, killed in the middle.
	done := make(chan struct{})
	var created atomic.Int32
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			status, _ := n2.API("POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": fmt.Sprintf("burst-%03d", i)})
			if status == 0 {
				return
			}
			if status == 201 {
				created.Add(1)
			}
		}
	}()
	waitFor(t, func() bool { return created.Load() >= 10 })
	n2.Kill()
	<-done

	n3 := startNode(t, testutil.ServerOptions{Home: n.Home, Ports: n})
	var pg page[repoJSON]
	json.Unmarshal(n3.MustAPI(200, "GET", "/rest/api/1.0/projects/PROJ/repos?limit=1000", nil), &pg)
	if pg.Size < 1+int(created.Load()) {
		t.Fatalf("repositories after kill -9: %d, but %d creations were acknowledged", pg.Size, 1+created.Load())
	}
	// Every recorded repository exists in the store and is usable; nothing on disk
	// is unrecorded.
	recorded := map[string]bool{}
	for _, r := range pg.Values {
		recorded[r.Slug] = true
		if _, err := g.TryRun(work, "ls-remote", n3.SSHURL("PROJ", r.Slug)); err != nil {
			t.Fatalf("recorded repository %s unusable after kill -9: %v", r.Slug, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(n.Home, "shared", "data", "repositories", "PROJ"))
	for _, e := range entries {
		if slug := strings.TrimSuffix(e.Name(), ".git"); strings.HasSuffix(e.Name(), ".git") && !recorded[slug] {
			t.Errorf("unrecorded repository %s left on disk", e.Name())
		}
	}
}
