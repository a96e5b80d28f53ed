package sshserve

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestLoadOrCreateHostKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	first, err := LoadOrCreateHostKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 3 || first[0].PublicKey().Type() != ssh.KeyAlgoED25519 || first[1].PublicKey().Type() != ssh.KeyAlgoECDSA256 || first[2].PublicKey().Type() != ssh.KeyAlgoRSA {
		t.Fatalf("host keys: %v", first)
	}
	if rk, ok := first[2].PublicKey().(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey); !ok || rk.N.BitLen() != 3072 {
		t.Fatalf("RSA host key is not RSA-3072: %T", first[2].PublicKey())
	}
	for i, f := range []string{HostKeyEd25519File, HostKeyECDSAFile, HostKeyRSAFile} {
		if out, err := exec.Command("ssh-keygen", "-l", "-f", filepath.Join(dir, f)).CombinedOutput(); err != nil && !errors.Is(err, exec.ErrNotFound) {
			t.Fatalf("ssh-keygen -l %s: %v\n%s", f, err, out)
		}
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
		pub, err := os.ReadFile(filepath.Join(dir, f+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		if k, _, _, _, err := ssh.ParseAuthorizedKey(pub); err != nil || !bytes.Equal(k.Marshal(), first[i].PublicKey().Marshal()) {
			t.Fatalf("%s.pub: %q %v, not the loaded key", f, pub, err)
		}
	}
	second, err := LoadOrCreateHostKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if !bytes.Equal(first[i].PublicKey().Marshal(), second[i].PublicKey().Marshal()) {
			t.Fatalf("host key %d changed across loads: %s vs %s", i,
				ssh.FingerprintSHA256(first[i].PublicKey()), ssh.FingerprintSHA256(second[i].PublicKey()))
		}
	}
	// A key file others can read is refused, as OpenSSH refuses it.
	if err := os.Chmod(filepath.Join(dir, HostKeyEd25519File), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateHostKeys(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable host key: err = %v", err)
	}
	// A corrupt key file is an error, never silently replaced.
	if err := os.WriteFile(filepath.Join(dir, HostKeyEd25519File), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateHostKeys(dir); err == nil {
		t.Fatal("corrupt host key accepted")
	}
}
