package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// GPGKey is an OpenPGP signing key in a throwaway GnuPG home, as a user who
// signs pushes (git push --signed) has one.
type GPGKey struct {
	// Home is the GnuPG home (GNUPGHOME) holding the secret key. Its path is
	// short, so that gpg-agent's socket fits in a socket address.
	Home string
	// UserID is the key's user id, "Name <email>".
	UserID string
	// Email is the address in UserID, which git's user.signingKey can name.
	Email string
	// ID is the key's long id (16 hex digits), as git reports it in
	// GIT_PUSH_CERT_KEY.
	ID string
	// Public is the armored public key.
	Public []byte
}

// NewGPGKey generates an Ed25519 signing key without a passphrase for name and
// email in a fresh GnuPG home. The agent gpg starts for it is stopped and the
// home removed at the end of the test. It skips the test (fails it under
// GITFLEET_INTEROP=require) when gpg is missing.
func NewGPGKey(t testing.TB, name, email string) *GPGKey {
	t.Helper()
	Require(t, "gpg")
	home := newGPGHome(t)
	k := &GPGKey{Home: home, UserID: name + " <" + email + ">", Email: email}
	runGPG(t, home, nil, "--batch", "--passphrase", "", "--quick-gen-key", k.UserID, "ed25519", "sign", "never")
	for _, line := range strings.Split(runGPG(t, home, nil, "--batch", "--with-colons", "--list-keys", email), "\n") {
		if f := strings.Split(line, ":"); len(f) > 4 && f[0] == "pub" {
			k.ID = f[4]
		}
	}
	if k.ID == "" {
		t.Fatalf("gpg: no key id for %s", k.UserID)
	}
	k.Public = []byte(runGPG(t, home, nil, "--batch", "--armor", "--export", email))
	return k
}

// GPGKeyring returns a fresh GnuPG home holding the public keys of keys, as a
// server keeps the keys it verifies signatures with; it is removed at the end of
// the test.
func GPGKeyring(t testing.TB, keys ...*GPGKey) string {
	t.Helper()
	Require(t, "gpg")
	home := newGPGHome(t)
	ImportGPGKeys(t, home, keys...)
	return home
}

// ImportGPGKeys imports the public keys of keys into the GnuPG home dir,
// creating it (mode 0700) when missing.
func ImportGPGKeys(t testing.TB, dir string, keys ...*GPGKey) {
	t.Helper()
	Require(t, "gpg")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		runGPG(t, dir, k.Public, "--batch", "--import")
	}
}

func newGPGHome(t testing.TB) string {
	t.Helper()
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if gpgconf, err := exec.LookPath("gpgconf"); err == nil {
			cmd := exec.Command(gpgconf, "--kill", "all")
			cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
			cmd.Run()
		}
		os.RemoveAll(home)
	})
	return home
}

func runGPG(t testing.TB, home string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("gpg", args...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}
