package sshserve_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
)

func newCert(t *testing.T, ca ssh.Signer, key ssh.PublicKey, serial uint64, id string) *ssh.Certificate {
	t.Helper()
	cert := &ssh.Certificate{Key: key, Serial: serial, CertType: ssh.UserCert, KeyId: id,
		ValidPrincipals: []string{"alice"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestRevocationList parses a revocation file and checks keys, certificates,
// serials, ranges, key IDs and authorities against it.
func TestRevocationList(t *testing.T) {
	ca := testutil.GenerateKey(t, testutil.Ed25519)
	otherCA := testutil.GenerateKey(t, testutil.Ed25519)
	user := testutil.GenerateKey(t, testutil.ECDSA256)
	revokedUser := testutil.GenerateKey(t, testutil.Ed25519)
	text := "# revoked\n\nserial: 5\nserial:10-20\nSERIAL : 99\nid: laptop-stolen\n" +
		revokedUser.AuthorizedKey + "\nkey: " + otherCA.AuthorizedKey + "\n"
	rl, err := sshserve.ParseRevocationList("revoked", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		key     ssh.PublicKey
		revoked bool
	}{
		{"plain key", user.Public, false},
		{"revoked plain key", revokedUser.Public, true},
		{"certificate", newCert(t, ca.Signer, user.Public, 4, "ok"), false},
		{"serial", newCert(t, ca.Signer, user.Public, 5, "ok"), true},
		{"range start", newCert(t, ca.Signer, user.Public, 10, "ok"), true},
		{"range end", newCert(t, ca.Signer, user.Public, 20, "ok"), true},
		{"after the range", newCert(t, ca.Signer, user.Public, 21, "ok"), false},
		{"key ID", newCert(t, ca.Signer, user.Public, 0, "laptop-stolen"), true},
		{"certified key", newCert(t, ca.Signer, revokedUser.Public, 0, "ok"), true},
		{"authority", newCert(t, otherCA.Signer, user.Public, 0, "ok"), true},
		{"serial 99", newCert(t, ca.Signer, user.Public, 99, "ok"), true},
	} {
		err := rl.Check(tc.key)
		if got := errors.Is(err, sshserve.ErrRevoked); got != tc.revoked {
			t.Errorf("%s: Check = %v, want revoked %v", tc.name, err, tc.revoked)
		}
	}
	var nilList *sshserve.RevocationList
	if err := nilList.Check(user.Public); err != nil {
		t.Fatalf("a nil list revoked a key: %v", err)
	}
}

// TestKeyListErrors refuses bad lines of both files with the file and line.
func TestKeyListErrors(t *testing.T) {
	good := testutil.GenerateKey(t, testutil.Ed25519)
	dsa := testutil.GenerateKey(t, testutil.DSA)
	rsa1024 := testutil.GenerateKey(t, testutil.RSA1024)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	caSigner, _ := ssh.NewSignerFromKey(priv)
	cert := newCert(t, caSigner, good.Public, 3, "c")
	certLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert)))
	for _, tc := range []struct{ text, want string }{
		{"# ok\n" + good.AuthorizedKey + "\nnot a key\n", "ca:3:"},
		{dsa.AuthorizedKey + "\n", "DSA keys are not accepted"},
		{rsa1024.AuthorizedKey + "\n", "at least 2048 bits"},
		{`from="10.0.0.0/8" ` + good.AuthorizedKey + "\n", "options are not allowed"},
		{certLine + "\n", "a certificate cannot be a certificate authority"},
	} {
		_, err := sshserve.ParseTrustedUserCAKeys("ca", []byte(tc.text))
		if !errors.Is(err, sshserve.ErrKeyList) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseTrustedUserCAKeys(%q) = %v, want %q", tc.text, err, tc.want)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{"serial: 0\n", "revoked:1: serial 0 cannot be revoked"},
		{"\nserial: x\n", "revoked:2:"},
		{"serial: 9-3\n", "not N-M"},
		{"id:\n", "empty key ID"},
		{"ssh-ed25519 AAAA\n", "not a public key"},
		{certLine + "\n", `"serial: 3"`},
	} {
		_, err := sshserve.ParseRevocationList("revoked", []byte(tc.text))
		if !errors.Is(err, sshserve.ErrKeyList) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRevocationList(%q) = %v, want %q", tc.text, err, tc.want)
		}
	}
}

// FuzzParseRevocationList checks that the parser never panics and that what it
// accepts, written back in the file's own form, parses to the same list.
func FuzzParseRevocationList(f *testing.F) {
	for _, s := range []string{"serial: 5\n", "serial: 1-9\nid: x\n", "# c\n\nid: a b\n",
		"key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIIlO0SOPtqLhjIgakXLWDzUg7ZVUDmVsG4SzD8iN3xj c\n", "serial: 18446744073709551615\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rl, err := sshserve.ParseRevocationList("fuzz", data)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, k := range rl.Keys {
			b.Write(ssh.MarshalAuthorizedKey(k))
		}
		for _, s := range rl.Serials {
			if s.First == 0 || s.Last < s.First {
				t.Fatalf("accepted serial range %v", s)
			}
			b.WriteString("serial: " + strconv.FormatUint(s.First, 10) + "-" + strconv.FormatUint(s.Last, 10) + "\n")
		}
		for _, id := range rl.KeyIDs {
			b.WriteString("id: " + id + "\n")
		}
		again, err := sshserve.ParseRevocationList("again", []byte(b.String()))
		if err != nil {
			t.Fatalf("written back %q: %v", b.String(), err)
		}
		if len(again.Keys) != len(rl.Keys) || len(again.Serials) != len(rl.Serials) || len(again.KeyIDs) != len(rl.KeyIDs) {
			t.Fatalf("round trip changed the list: %+v -> %+v", rl, again)
		}
		for i := range rl.KeyIDs {
			if again.KeyIDs[i] != rl.KeyIDs[i] {
				t.Fatalf("key ID %q became %q", rl.KeyIDs[i], again.KeyIDs[i])
			}
		}
	})
}
