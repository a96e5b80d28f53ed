package mirror

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

// KeyFileName is the mirror key's file name in <home>/shared/config.
const KeyFileName = "mirror_ed25519"

// Key is a mirror's SSH key, the only secret a mirror holds: it signs the
// mirror's API calls and authenticates its fetches over SSH. Config.Key takes
// it; LoadOrCreateKey keeps it in the home directory, GenerateKey makes one in
// memory only.
type Key struct {
	// Signer signs with the key.
	Signer ssh.Signer
	// PEM is the private key in OpenSSH format, handed to git for fetches.
	PEM []byte
	// File is where the key was read from or written to; empty for a key held
	// in memory only.
	File string
}

// PublicKey returns the key's public half.
func (k *Key) PublicKey() ssh.PublicKey { return k.Signer.PublicKey() }

// GenerateKey returns a new Ed25519 mirror key. It writes nothing.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "gitfleet-mirror")
	if err != nil {
		return nil, err
	}
	return ParseKey(pem.EncodeToMemory(block))
}

// ParseKey returns the mirror key held in data, an unencrypted private key in
// OpenSSH or PEM format.
func ParseKey(data []byte) (*Key, error) {
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("mirror: parse key: %w", err)
	}
	return &Key{Signer: signer, PEM: data}, nil
}

// KeyFile returns where LoadKey and LoadOrCreateKey keep the mirror key:
// <home>/shared/config/mirror_ed25519.
func KeyFile(home gitfleet.Home) string { return filepath.Join(home.ConfigDir(), KeyFileName) }

// LoadKey reads the mirror key from KeyFile(home). It refuses a file that others
// may read (it must have mode 0600); a missing file is an error wrapping
// fs.ErrNotExist.
func LoadKey(home gitfleet.Home) (*Key, error) {
	path := KeyFile(home)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("mirror: the mirror key is missing (%w); remove the mirror's home to set it up again", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mirror: the mirror key %s has mode %o; it must be 0600", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mirror: read key: %w", err)
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	k.File = path
	return k, nil
}

// LoadOrCreateKey reads the mirror key from KeyFile(home) as LoadKey does or,
// when the file does not exist, generates an Ed25519 key and writes it there
// atomically with mode 0600 (the directory is created with mode 0700), with its
// public line in a .pub file next to it. A mirror calls it before Open on every
// start; Open checks that the key is the one set up at the first start.
func LoadOrCreateKey(home gitfleet.Home) (*Key, error) {
	k, err := LoadKey(home)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = GenerateKey(); err != nil {
		return nil, err
	}
	path := KeyFile(home)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("mirror: create key directory: %w", err)
	}
	if err := writeFileAtomic(path, k.PEM, 0o600); err != nil {
		return nil, fmt.Errorf("mirror: write key: %w", err)
	}
	if err := writeFileAtomic(path+".pub", []byte(authorizedLine(k.PublicKey())+" gitfleet-mirror\n"), 0o644); err != nil {
		return nil, fmt.Errorf("mirror: write public key: %w", err)
	}
	k.File = path
	return k, nil
}

// writeFileAtomic writes data to a temporary file next to path, syncs it and
// renames it over path.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
