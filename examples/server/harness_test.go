//go:build unix

// The tests that run the server binary (this file's harness and the files that
// use it) send it signals and kill process groups, and the server runs its
// storage sidecar, which mesh.Supervisor starts on Unix only: they run on Unix.

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// serverBin is the server binary built once for the package's tests.
var serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gitfleet-server-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin = filepath.Join(dir, "server")
	if err := testutil.BuildProgram("./examples/server", serverBin); err != nil {
		fmt.Fprintln(os.Stderr, "build server:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := testutil.RunVerified(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// startNode starts the package's server binary (see testutil.StartServer).
func startNode(t testing.TB, o testutil.ServerOptions) *testutil.ServerNode {
	t.Helper()
	o.Bin = serverBin
	return testutil.StartServer(t, o)
}

// restCall is ServerNode.API, except that a string body is sent as it is (the
// REST test sends malformed JSON) and a failed connection fails the test.
func restCall(t testing.TB, n *testutil.ServerNode, method, path string, body any) (int, []byte) {
	t.Helper()
	s, ok := body.(string)
	if !ok {
		status, data := n.API(method, path, body)
		if status == 0 {
			t.Fatalf("%s %s: %s", method, path, data)
		}
		return status, data
	}
	req, err := http.NewRequest(method, n.URL(path), strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(n.AdminCreds())
	resp, err := n.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// setupUserRepo creates project PROJ with repository repo, a user alice with key
// and PROJECT_WRITE, and returns a git driver set up to use key.
func setupUserRepo(t *testing.T, n *testutil.ServerNode) (*testutil.Git, *testutil.Key) {
	t.Helper()
	n.MustAPI(201, "POST", "/rest/api/1.0/projects", map[string]string{"key": "PROJ", "name": "Project"})
	n.MustAPI(201, "POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": "repo"})
	key := testutil.GenerateKey(t, testutil.Ed25519)
	n.MustAPI(201, "POST", "/rest/ssh/1.0/keys?user=alice", map[string]string{"text": key.AuthorizedKey})
	n.MustAPI(204, "PUT", "/rest/api/1.0/projects/PROJ/permissions/users?name=alice&permission=PROJECT_WRITE", nil)
	g := testutil.NewGit(t)
	g.SetSSH(key, n.KnownHosts(t, 0))
	return g, key
}

func httpNewRequest(method, url, user, pass string) (int, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, err
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// waitFor polls cond for up to 60 seconds.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 60 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func errorAs(err error, target any) bool { return errors.As(err, target) }
