package node

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// sshKeygen runs the real ssh-keygen.
func sshKeygen(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(testutil.Require(t, "ssh-keygen"), args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNodeCertificates configures a primary through the properties
// (plugin.ssh.trusted.user.ca.keys, plugin.ssh.revoked.keys): a certificate
// from the authority of the file clones as the user its principal names, a
// certificate for a name the embedder does not know is refused, and a revoked
// key is refused although the embedder's key callback knows it.
func TestNodeCertificates(t *testing.T) {
	git := testutil.NewGit(t)
	testutil.Require(t, "ssh")
	dir := t.TempDir()
	ca, alice, bob, revoked := filepath.Join(dir, "ca"), filepath.Join(dir, "alice"), filepath.Join(dir, "bob"), filepath.Join(dir, "revoked")
	for _, k := range []string{ca, alice, bob, revoked} {
		sshKeygen(t, "-q", "-t", "ed25519", "-N", "", "-f", k)
	}
	sshKeygen(t, "-q", "-s", ca, "-I", "alice-laptop", "-n", "alice", "-V", "-1m:+1h", alice+".pub")
	sshKeygen(t, "-q", "-s", ca, "-I", "bob-laptop", "-n", "bob", "-V", "-1m:+1h", bob+".pub")
	caFile, revokedFile := filepath.Join(dir, "trusted-ca"), filepath.Join(dir, "revoked-keys")
	if err := os.WriteFile(caFile, []byte(readFile(t, ca+".pub")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(revokedFile, []byte("# lost laptop\n"+readFile(t, revoked+".pub")), 0o644); err != nil {
		t.Fatal(err)
	}
	revokedKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(readFile(t, revoked+".pub")))
	if err != nil {
		t.Fatal(err)
	}

	home := gitfleet.Home(t.TempDir())
	cfg := testConfig(t, home, "PLUGIN_SSH_TRUSTED_USER_CA_KEYS="+caFile, "PLUGIN_SSH_REVOKED_KEYS="+revokedFile)
	if ps := CheckSSHFiles(cfg); len(ps) != 0 {
		t.Fatalf("CheckSSHFiles: %v", ps)
	}
	var mu sync.Mutex
	var names []string // principals the embedder was asked about
	n := &Node{
		Home: home, Config: cfg, State: mirror.NewMemoryState(),
		PublicKeyCallback: func(ctx context.Context, c sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
			if ssh.FingerprintSHA256(key) == ssh.FingerprintSHA256(revokedKey) {
				return sshserve.Principal{Name: "alice"}, nil
			}
			return sshserve.Principal{}, errors.New("unknown key")
		},
		CertificateCallback: sshserve.PrincipalsCallback(func(ctx context.Context, c sshserve.ConnInfo, name string) (sshserve.Principal, error) {
			mu.Lock()
			names = append(names, name)
			mu.Unlock()
			if name == "alice" {
				return sshserve.Principal{Name: "alice", ID: "1"}, nil
			}
			return sshserve.Principal{}, errors.New("no such user")
		}),
		Authorizer: func(ctx context.Context, c sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
			if p.Name == "alice" {
				return nil
			}
			return sshserve.ErrDenied
		},
		Setup: func(ctx context.Context, repos mesh.Repos) error { return repos.Create(ctx, "PROJ", "repo") },
	}
	known := serveSSH(t, n)
	url := gitfleet.CloneURL(cfg.SSHBaseURL(), gitfleet.RepoName{Project: "PROJ", Slug: "repo"})
	work := t.TempDir()
	git.SetSSH(&testutil.Key{Path: alice}, known)
	git.Run(work, "clone", url, "a")
	git.SetSSH(&testutil.Key{Path: bob}, known)
	if _, err := git.TryRun(work, "clone", url, "b"); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("clone with a certificate for an unknown user: %v", err)
	}
	git.SetSSH(&testutil.Key{Path: revoked}, known)
	if _, err := git.TryRun(work, "clone", url, "r"); err == nil || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("clone with a revoked key: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(names, ",") != "alice,bob" {
		t.Fatalf("the embedder was asked about %q, want alice,bob", names)
	}
}

// TestSSHFileProblems: CheckSSHFiles and a node's start name the property, the
// file and the line of a bad entry, and a node with authorities but no
// CertificateCallback does not start.
func TestSSHFileProblems(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("# ok\nnot a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("# nothing yet\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := testutil.GenerateKey(t, testutil.Ed25519)
	for _, tc := range []struct {
		name  string
		env   []string
		check string // in CheckSSHFiles' problems
		start string // in ListenAndServe's error
	}{
		{"bad authority file", []string{"PLUGIN_SSH_TRUSTED_USER_CA_KEYS=" + bad}, "error: " + props.KeySSHTrustedUserCAKeys + ": sshserve: bad key list line: " + bad + ":2:", bad + ":2:"},
		{"bad revocation file", []string{"PLUGIN_SSH_REVOKED_KEYS=" + bad}, props.KeySSHRevokedKeys + ": sshserve: bad key list line: " + bad + ":2: not a public key", props.KeySSHRevokedKeys},
		{"missing file", []string{"PLUGIN_SSH_REVOKED_KEYS=" + filepath.Join(dir, "none")}, "no such file", "no such file"},
		{"no authority", []string{"PLUGIN_SSH_TRUSTED_USER_CA_KEYS=" + empty}, "warning: " + props.KeySSHTrustedUserCAKeys, ""},
		{"no CertificateCallback", []string{"PLUGIN_SSH_TRUSTED_USER_CA_KEYS=" + ca.Path + ".pub"}, "", "no CertificateCallback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := gitfleet.Home(t.TempDir())
			cfg := testConfig(t, home, tc.env...)
			ps := CheckSSHFiles(cfg)
			if tc.check == "" && len(ps) != 0 || tc.check != "" && !strings.Contains(ps.Error(), tc.check) {
				t.Errorf("CheckSSHFiles = %v, want %q", ps, tc.check)
			}
			if tc.start == "" {
				return
			}
			n := &Node{Home: home, Config: cfg, State: mirror.NewMemoryState()}
			err := n.ListenAndServe()
			if err == nil || !strings.Contains(err.Error(), tc.start) {
				t.Errorf("ListenAndServe = %v, want an error with %q", err, tc.start)
			}
			n.Close()
		})
	}
}
