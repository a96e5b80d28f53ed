package sshserve_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// keygen makes keys and certificates with the real ssh-keygen in one directory.
type keygen struct {
	t    *testing.T
	path string
	dir  string
}

func newKeygen(t *testing.T) *keygen {
	return &keygen{t: t, path: testutil.Require(t, "ssh-keygen"), dir: t.TempDir()}
}

func (k *keygen) run(args ...string) {
	k.t.Helper()
	if out, err := exec.Command(k.path, args...).CombinedOutput(); err != nil {
		k.t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// key generates a key (Ed25519 unless args say otherwise) and returns the path
// of its private half; the public half is path+".pub".
func (k *keygen) key(name string, args ...string) string {
	k.t.Helper()
	p := filepath.Join(k.dir, name)
	k.run(append([]string{"-q", "-N", "", "-C", name, "-f", p}, append([]string{"-t", "ed25519"}, args...)...)...)
	return p
}

// sign issues a certificate for key with the authority ca, leaving it where
// OpenSSH looks for it (key+"-cert.pub").
func (k *keygen) sign(ca, key string, args ...string) {
	k.t.Helper()
	k.run(append(append([]string{"-q", "-s", ca, "-I", "id-" + filepath.Base(key)}, args...), key+".pub")...)
}

func (k *keygen) pub(key string) string {
	k.t.Helper()
	b, err := os.ReadFile(key + ".pub")
	if err != nil {
		k.t.Fatal(err)
	}
	return string(b)
}

// TestCertificates logs in with OpenSSH user certificates issued by ssh-keygen,
// through git ls-remote over the real ssh client: the valid ones authenticate as
// the user their principal names; every other case is refused, with its reason
// in the log.
func TestCertificates(t *testing.T) {
	kg := newKeygen(t)
	ca := kg.key("ca")
	otherCA := kg.key("other-ca")
	revokedCA := kg.key("revoked-ca")
	rsaCA := kg.key("rsa-ca", "-t", "rsa", "-b", "3072")
	revokedKey := kg.key("revoked-key")

	caFile := filepath.Join(kg.dir, "trusted-ca")
	writeFile(t, caFile, "# the authorities\n"+kg.pub(ca)+kg.pub(revokedCA)+"\n"+kg.pub(rsaCA))
	cas, err := sshserve.LoadTrustedUserCAKeys(caFile)
	if err != nil {
		t.Fatal(err)
	}
	revFile := filepath.Join(kg.dir, "revoked")
	writeFile(t, revFile, "serial: 42\nserial: 1000-1999\nid: id-stolen\n"+kg.pub(revokedKey)+"key: "+kg.pub(revokedCA))
	revoked, err := sshserve.LoadRevocationList(revFile)
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	srv := sshservetest.NewServer(t, sshservetest.WithLogger(logs.logger()), func(s *sshserve.Server) {
		s.TrustedUserCAKeys = cas
		s.Revoked = revoked
	})
	srv.SeedRepo("PROJ", "repo")
	alice := srv.AddUser("alice", sshservetest.Read("PROJ/repo"))
	caKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(kg.pub(ca)))
	if err != nil {
		t.Fatal(err)
	}
	// Even mapped to a user by the key callback, the CA's own key does not log in.
	srv.AddKey(alice, caKey)

	for _, tc := range []struct {
		name string
		ca   string   // the authority that signs; "" for no certificate
		args []string // ssh-keygen's certificate options
		bind string   // the client's source address; "" for 127.0.0.1
		key  string   // the key to certify and log in with; "" for a new Ed25519 key
		ok   bool
		log  string // in the log when refused
	}{
		{name: "valid", ca: ca, args: []string{"-n", "alice", "-V", "-5m:+1h"}, ok: true},
		{name: "valid forever with a serial", ca: ca, args: []string{"-n", "alice", "-z", "7"}, ok: true},
		{name: "RSA authority with SHA-2", ca: rsaCA, args: []string{"-n", "alice", "-t", "rsa-sha2-512"}, ok: true},
		{name: "expired", ca: ca, args: []string{"-n", "alice", "-V", "-2h:-1h"}, log: "expired at"},
		{name: "not yet valid", ca: ca, args: []string{"-n", "alice", "-V", "+1h:+2h"}, log: "not valid before"},
		{name: "untrusted authority", ca: otherCA, args: []string{"-n", "alice"}, log: "which is not a trusted certificate authority"},
		{name: "revoked serial", ca: ca, args: []string{"-n", "alice", "-z", "42"}, log: "certificate serial 42 is listed"},
		{name: "revoked serial range", ca: ca, args: []string{"-n", "alice", "-z", "1500"}, log: "certificate serial 1500 is listed"},
		{name: "revoked key ID", ca: ca, args: []string{"-n", "alice", "-I", "id-stolen"}, log: "certificate key ID"},
		{name: "revoked key", ca: ca, key: revokedKey, args: []string{"-n", "alice"}, log: "the certificate's key"},
		{name: "revoked authority", ca: revokedCA, args: []string{"-n", "alice"}, log: "the certificate authority SHA256:"},
		{name: "source-address matches", ca: ca, args: []string{"-n", "alice", "-O", "source-address=10.0.0.0/8,127.0.0.2/32"}, bind: "127.0.0.2", ok: true},
		{name: "source-address does not match", ca: ca, args: []string{"-n", "alice", "-O", "source-address=127.0.0.2"}, log: "does not allow 127.0.0.1"},
		{name: "unknown critical option", ca: ca, args: []string{"-n", "alice", "-O", "critical:foo=bar"}, log: "unknown critical option"},
		{name: "force-command", ca: ca, args: []string{"-n", "alice", "-O", "force-command=whoami"}, log: "force-command is not supported"},
		{name: "verify-required", ca: ca, args: []string{"-n", "alice", "-O", "verify-required"}, log: "verify-required is not supported"},
		{name: "principal without a user", ca: ca, args: []string{"-n", "bob"}, log: "names a known user"},
		{name: "two users", ca: ca, args: []string{"-n", "alice," + sshservetest.DefaultUser}, log: "names 2 known users"},
		{name: "no principal", ca: ca, log: "names no principal"},
		{name: "SHA-1 authority signature", ca: rsaCA, args: []string{"-n", "alice", "-t", "ssh-rsa"}, log: "signed it with ssh-rsa"},
		{name: "short RSA key", ca: ca, key: kg.key("rsa1024", "-t", "rsa", "-b", "1024"), args: []string{"-n", "alice"}, log: "RSA keys must have at least 2048 bits"},
		{name: "authority key as a plain key", key: ca, log: "trusted certificate authority cannot log in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key
			if key == "" {
				key = kg.key(strings.ReplaceAll(tc.name, " ", "-"))
			}
			if tc.ca != "" {
				kg.sign(tc.ca, key, tc.args...)
			}
			sshCmd := testutil.SSHCommand(key, srv.KnownHosts)
			if tc.bind != "" {
				sshCmd += " -o BindAddress=" + tc.bind
			}
			g := testutil.NewGit(t)
			g.SetEnv("GIT_SSH_COMMAND", sshCmd)
			g.SetEnv("GIT_SSH_VARIANT", "ssh")
			out, err := g.TryRun("", "ls-remote", srv.URL("PROJ", "repo"))
			if tc.ok {
				if err != nil {
					t.Fatalf("ls-remote refused: %v\n%s\nserver log:\n%s", err, out, logs.String())
				}
				mustContain(t, "ls-remote", out, "refs/heads/main")
				if tc.bind == "" {
					who, stderr, err := testutil.NewSSH(t, "git", srv.Host, srv.Port, &testutil.Key{Path: key}, srv.KnownHosts).Run("whoami")
					if err != nil || who != "alice\n" {
						t.Fatalf("whoami = %q, %v, %s", who, err, stderr)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("ls-remote with the certificate succeeded: %s", out)
			}
			mustContain(t, "ls-remote", err.Error(), "Permission denied")
			mustContain(t, "server log", logs.String(), tc.log)
		})
	}
	st := srv.Stats()
	for _, reason := range []string{sshserve.RejectCertificate, sshserve.RejectRevoked, sshserve.RejectKeyPolicy} {
		if st.Rejected[reason] == 0 {
			t.Errorf("no %q rejection counted: %v", reason, st.Rejected)
		}
	}
	mustContain(t, "server log", logs.String(), "cert_id=id-valid")
}

// TestCertificateConfigErrors: Serve refuses trusted authorities without a
// CertificateCallback, and an authority key the key policy refuses.
func TestCertificateConfigErrors(t *testing.T) {
	host := testutil.GenerateKey(t, testutil.Ed25519)
	ca := testutil.GenerateKey(t, testutil.Ed25519)
	dsa := testutil.GenerateKey(t, testutil.DSA)
	cb := sshserve.PrincipalsCallback(func(context.Context, sshserve.ConnInfo, string) (sshserve.Principal, error) {
		return sshserve.Principal{}, errors.New("none")
	})
	for _, tc := range []struct {
		name string
		srv  *sshserve.Server
		want string
	}{
		{"no callback", &sshserve.Server{HostKeys: []ssh.Signer{host.Signer}, TrustedUserCAKeys: []ssh.PublicKey{ca.Public}}, "CertificateCallback is nil"},
		{"DSA authority", &sshserve.Server{HostKeys: []ssh.Signer{host.Signer}, TrustedUserCAKeys: []ssh.PublicKey{dsa.Public}, CertificateCallback: cb}, "DSA keys are not accepted"},
	} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.srv.Serve(l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Serve = %v, want %q", tc.name, err, tc.want)
		}
	}
}
