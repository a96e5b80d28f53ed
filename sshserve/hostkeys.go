package sshserve

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// Host key file names LoadOrCreateHostKeys uses inside its directory, as OpenSSH
// names them; each has a ".pub" companion.
const (
	HostKeyEd25519File = "ssh_host_ed25519_key"
	HostKeyECDSAFile   = "ssh_host_ecdsa_key"
	HostKeyRSAFile     = "ssh_host_rsa_key"
)

// hostKeyRSABits is the size of a generated RSA host key.
const hostKeyRSABits = 3072

// LoadOrCreateHostKeys returns the server's host keys from dir: an Ed25519 key, an
// ECDSA P-256 key and an RSA-3072 key in OpenSSH format, the three a stock OpenSSH
// install generates, so that every client that accepts one of OpenSSH's host keys
// accepts one of these. A key file that is missing is generated and
// written with mode 0600 (dir is created with 0700 if needed); a key file that
// exists is reused, so fingerprints stay the same across restarts. A private key
// file that group or others may read is refused, as OpenSSH refuses it. This is the
// only function in the package that writes key files.
func LoadOrCreateHostKeys(dir string) ([]ssh.Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sshserve: host keys: %w", err)
	}
	var signers []ssh.Signer
	for _, hk := range []struct {
		file string
		gen  func() (crypto.Signer, error)
	}{
		{HostKeyEd25519File, func() (crypto.Signer, error) {
			_, k, err := ed25519.GenerateKey(rand.Reader)
			return k, err
		}},
		{HostKeyECDSAFile, func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }},
		{HostKeyRSAFile, func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, hostKeyRSABits) }},
	} {
		s, err := loadOrCreateHostKey(filepath.Join(dir, hk.file), hk.gen)
		if err != nil {
			return nil, fmt.Errorf("sshserve: host key %s: %w", filepath.Join(dir, hk.file), err)
		}
		signers = append(signers, s)
	}
	return signers, nil
}

func loadOrCreateHostKey(path string, gen func() (crypto.Signer, error)) (ssh.Signer, error) {
	s, err := loadHostKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	key, err := gen()
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(key, "gitfleet host key")
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromSigner(key)
	if err != nil {
		return nil, err
	}
	// Write to a temporary file and link it into place: a concurrent starter either
	// wins (and both use its key) or finds the file complete.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".hostkey-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, err
	}
	if _, err := tmp.Write(pem.EncodeToMemory(block)); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadHostKey(path)
		}
		return nil, err
	}
	pub := ssh.MarshalAuthorizedKey(signer.PublicKey())
	if err := os.WriteFile(path+".pub", pub, 0o644); err != nil {
		return nil, err
	}
	return signer, nil
}

func loadHostKey(path string) (ssh.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("private key file has mode %04o; it must not be accessible by group or others (chmod 600)", st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey(data)
}
