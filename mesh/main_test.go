package mesh_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
)

// helperEnv switches the test binary into one of its helper roles (see TestMain).
const helperEnv = "MESH_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		testutil.VerifyMain(m)
	case "ssh":
		os.Exit(runSSHHelper(os.Args[1:]))
	case "sidecar":
		os.Exit(runSidecarHelper())
	case "parent":
		os.Exit(runParentHelper())
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// gitBackend is sshserve.GitBackend, restated so these tests need no import of it.
type gitBackend interface {
	ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error
}

// startGitServer serves backend on a unix socket the way an SSH server would: one
// connection per git command, stdin and stdout raw over the connection. The test
// binary's "ssh" helper (set as GIT_SSH_COMMAND by newGit) is the client side; it
// sends "service\trepo\tGIT_PROTOCOL\tstatusfile\n" first, and the server writes
// git's stderr to statusfile.err and the exit code to statusfile before closing.
func startGitServer(t testing.TB, backend gitBackend) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "meshsock")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "git.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveGitConn(ctx, backend, c.(*net.UnixConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
		os.RemoveAll(dir)
	})
	return sock
}

func serveGitConn(ctx context.Context, backend gitBackend, c *net.UnixConn) {
	defer c.Close()
	br := bufio.NewReader(c)
	hdr, err := br.ReadString('\n')
	if err != nil {
		return
	}
	f := strings.Split(strings.TrimSuffix(hdr, "\n"), "\t")
	if len(f) != 4 {
		return
	}
	// The edge parses the request once, as an SSH server does; a bad
	// GIT_PROTOCOL is dropped.
	req := gitfleet.GitRequest{Service: gitfleet.Service(f[0])}
	if f[2] != "" {
		req.Protocol, _ = gitfleet.ParseProtocol(f[2])
	}
	var stderr strings.Builder
	req.Repo, err = gitfleet.ParseRepoPath(f[1])
	if err == nil {
		err = backend.ServeGit(ctx, req, connReader{io.MultiReader(br, c), c}, c, &stderr)
	}
	code := 0
	if err != nil {
		code = 255
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) && ec.ExitCode() > 0 {
			code = ec.ExitCode()
		}
		stderr.WriteString("serve: " + err.Error() + "\n")
	}
	os.WriteFile(f[3]+".err", []byte(stderr.String()), 0o600)
	os.WriteFile(f[3], []byte(strconv.Itoa(code)), 0o600)
}

// runSSHHelper is invoked by git as GIT_SSH_COMMAND: [options] host command.
func runSSHHelper(args []string) int {
	if len(args) == 0 {
		return 2
	}
	command := args[len(args)-1]
	service, path, ok := strings.Cut(command, " ")
	if !ok {
		fmt.Fprintln(os.Stderr, "helper: bad command", command)
		return 2
	}
	path = strings.Trim(path, "'")
	status, err := os.CreateTemp("", "meshstatus")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	status.Close()
	defer os.Remove(status.Name())
	defer os.Remove(status.Name() + ".err")
	c, err := net.Dial("unix", os.Getenv("MESH_TEST_SOCKET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 255
	}
	uc := c.(*net.UnixConn)
	fmt.Fprintf(uc, "%s\t%s\t%s\t%s\n", service, path, os.Getenv("GIT_PROTOCOL"), status.Name())
	go func() {
		io.Copy(uc, os.Stdin)
		uc.CloseWrite()
	}()
	io.Copy(os.Stdout, uc)
	uc.Close()
	msg, _ := os.ReadFile(status.Name() + ".err")
	os.Stderr.Write(msg)
	data, _ := os.ReadFile(status.Name())
	code, err := strconv.Atoi(string(data))
	if err != nil {
		return 255
	}
	return code
}

// newGit returns a git client whose ssh:// URLs (ssh://mesh/PROJECT/slug.git) reach
// the git server at sock.
func newGit(t testing.TB, sock string) *testutil.Git {
	g := testutil.NewGit(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	g.SetEnv("GIT_SSH_COMMAND", exe)
	g.SetEnv("GIT_SSH_VARIANT", "ssh")
	g.SetEnv(helperEnv, "ssh")
	g.SetEnv("MESH_TEST_SOCKET", sock)
	// A race-enabled binary sleeps a second at exit unless told otherwise.
	g.SetEnv("GORACE", "atexit_sleep_ms=0")
	return g
}

// request builds the request an SSH server would hand a backend for service on
// repo, with the protocol of env's GIT_PROTOCOL (the last valid one; any other
// variable or value is dropped). repo must be valid.
func request(service gitfleet.Service, repo string, env []string) gitfleet.GitRequest {
	r, err := gitfleet.ParseRepoPath(repo)
	if err != nil {
		panic(err)
	}
	req := gitfleet.GitRequest{Service: service, Repo: r}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GIT_PROTOCOL="); ok {
			if p, err := gitfleet.ParseProtocol(v); err == nil {
				req.Protocol = p
			}
		}
	}
	return req
}

func repoURL(project, slug string) string { return "ssh://mesh/" + project + "/" + slug + ".git" }

// connReader reads through a buffer but can be interrupted like the connection.
type connReader struct {
	io.Reader
	c net.Conn
}

func (r connReader) SetReadDeadline(t time.Time) error { return r.c.SetReadDeadline(t) }
