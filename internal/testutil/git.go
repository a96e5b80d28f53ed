package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Git drives the real git program as a client would, isolated from the machine's
// configuration: its own HOME, no system config, no terminal prompts, a fixed
// identity and dates, and (once SetSSH is called) a GIT_SSH_COMMAND with a throwaway
// known_hosts.
type Git struct {
	t    testing.TB
	Path string   // the git binary
	Home string   // the isolated HOME
	Env  []string // the full environment every command runs with
}

// NewGit returns a git driver with a fresh isolated HOME. It skips the test (fails
// under GITFLEET_INTEROP=require) when git is missing.
func NewGit(t testing.TB) *Git {
	t.Helper()
	path := Require(t, "git")
	home := t.TempDir()
	g := &Git{t: t, Path: path, Home: home}
	g.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Test Author",
		"GIT_AUTHOR_EMAIL=author@example.com",
		"GIT_COMMITTER_NAME=Test Committer",
		"GIT_COMMITTER_EMAIL=committer@example.com",
		"GIT_AUTHOR_DATE=2024-01-01T00:00:00Z",
		"GIT_COMMITTER_DATE=2024-01-01T00:00:00Z",
		"LANG=C",
	}
	// init.defaultBranch keeps hints out of stderr and makes new repositories use main.
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n[protocol]\n\tversion = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return g
}

// SetEnv adds or replaces an environment variable for every later command.
func (g *Git) SetEnv(key, value string) {
	prefix := key + "="
	for i, kv := range g.Env {
		if strings.HasPrefix(kv, prefix) {
			g.Env[i] = prefix + value
			return
		}
	}
	g.Env = append(g.Env, prefix+value)
}

// SetSSH makes git connect over the real OpenSSH client with key, trusting only the
// host keys in knownHosts (a file path), in batch mode.
func (g *Git) SetSSH(key *Key, knownHosts string) {
	g.SetEnv("GIT_SSH_COMMAND", SSHCommand(key.Path, knownHosts))
	g.SetEnv("GIT_SSH_VARIANT", "ssh")
}

// Command returns an *exec.Cmd for git args in dir with the driver's environment.
func (g *Git) Command(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(g.Path, args...)
	cmd.Dir = dir
	cmd.Env = append([]string(nil), g.Env...)
	return cmd
}

// Run runs git args in dir and returns its stdout; the test fails on error.
func (g *Git) Run(dir string, args ...string) string {
	g.t.Helper()
	out, err := g.TryRun(dir, args...)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

// TryRun runs git args in dir and returns stdout, or an error that includes stderr.
func (g *Git) TryRun(dir string, args ...string) (string, error) {
	cmd := g.Command(dir, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("git %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return stdout.String(), nil
}

// CommitFile writes content to name in the work tree dir, commits it with message,
// and returns the new commit id.
func (g *Git) CommitFile(dir, name, content, message string) string {
	g.t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		g.t.Fatal(err)
	}
	g.Run(dir, "add", "--", name)
	g.Run(dir, "commit", "-q", "-m", message)
	return strings.TrimSpace(g.Run(dir, "rev-parse", "HEAD"))
}

// Fsck runs `git fsck --strict` in the repository dir and fails the test when it
// reports a problem.
func (g *Git) Fsck(dir string) {
	g.t.Helper()
	if out, err := g.TryRun(dir, "fsck", "--strict", "--no-progress"); err != nil {
		g.t.Fatalf("fsck %s: %v\n%s", dir, err, out)
	}
}

// Refs returns `git for-each-ref` of the repository dir as ref -> id.
func (g *Git) Refs(dir string) map[string]string {
	g.t.Helper()
	refs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(g.Run(dir, "for-each-ref", "--format=%(objectname) %(refname)")), "\n") {
		if id, name, ok := strings.Cut(line, " "); ok {
			refs[name] = id
		}
	}
	return refs
}
