package mirror

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/ssh"
)

// SetupConfig is a mirror's setup, from bitbucket.properties: setup.displayName,
// setup.baseUrl, plugin.mirroring.upstream.url and plugin.mirroring.upstream.type.
// It is applied on the mirror's first start only; afterwards the stored setup
// wins, and a changed base URL or upstream is an error.
type SetupConfig struct {
	DisplayName  string // setup.displayName; empty means the base URL's host
	BaseURL      string // setup.baseUrl: the mirror's own https:// URL
	UpstreamURL  string // plugin.mirroring.upstream.url: the primary's https:// URL
	UpstreamType string // plugin.mirroring.upstream.type: "server" (empty means "server")
}

// The setup errors.
var (
	ErrSetup = errors.New("mirror: invalid setup")
)

// SetupChangedError reports a setup property whose value differs from the one
// stored at the mirror's first start.
type SetupChangedError struct {
	Property string // e.g. "setup.baseUrl"
	Stored   string
	Given    string
}

// Error implements error.
func (e *SetupChangedError) Error() string {
	what := "the mirror base URL"
	if e.Property == "plugin.mirroring.upstream.url" {
		what = "the mirror's upstream URL"
	}
	return fmt.Sprintf("mirror: %s can only be set once; remove the mirror's home to set it up again (%s is %q, was %q at setup)",
		what, e.Property, e.Given, e.Stored)
}

// validate checks the setup's shape without touching the network.
func (c *SetupConfig) validate() error {
	if c.UpstreamType == "" {
		c.UpstreamType = "server"
	}
	if c.UpstreamType != "server" {
		return fmt.Errorf("%w: plugin.mirroring.upstream.type is %q; only \"server\" is supported", ErrSetup, c.UpstreamType)
	}
	if c.UpstreamURL == "" {
		return fmt.Errorf("%w: plugin.mirroring.upstream.url is not set", ErrSetup)
	}
	if _, err := parseHTTPSURL(c.UpstreamURL); err != nil {
		return fmt.Errorf("%w: plugin.mirroring.upstream.url: %w", ErrSetup, err)
	}
	if c.BaseURL == "" {
		return fmt.Errorf("%w: setup.baseUrl is not set", ErrSetup)
	}
	u, err := parseHTTPSURL(c.BaseURL)
	if err != nil {
		return fmt.Errorf("%w: setup.baseUrl: %w", ErrSetup, err)
	}
	if c.DisplayName == "" {
		c.DisplayName = u.Hostname()
	}
	return nil
}

// identity is what a mirror stores at its first start.
type identity struct {
	ID      string      `json:"id"`
	Setup   SetupConfig `json:"setup"`
	KeyFile string      `json:"keyFile"`
	Created time.Time   `json:"created"`
}

// The mirror node's buckets.
var (
	nodeBucket     = []byte("gitfleet.mirror.node")
	identityKey    = []byte("identity")
	registrationKy = []byte("registration")
	reposBucket    = []byte("repos") // nested: PROJECT/slug -> repoState
)

// KeyFileName is the mirror key's file name under <home>/shared/config.
const KeyFileName = "mirror_ed25519"

// loadIdentity returns the stored identity, or nil before the first start.
func loadIdentity(db *bolt.DB) (*identity, error) {
	var id *identity
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(nodeBucket)
		if b == nil {
			return nil
		}
		v := b.Get(identityKey)
		if v == nil {
			return nil
		}
		id = new(identity)
		return json.Unmarshal(v, id)
	})
	return id, err
}

// setupIdentity applies setup on the first start (check verifies the upstream
// first) or compares it with the stored one, and loads the mirror key.
func setupIdentity(ctx context.Context, db *bolt.DB, home string, setup SetupConfig, check func(context.Context) error, now time.Time) (*identity, ssh.Signer, bool, error) {
	if err := setup.validate(); err != nil {
		return nil, nil, false, err
	}
	stored, err := loadIdentity(db)
	if err != nil {
		return nil, nil, false, fmt.Errorf("mirror: read setup: %w", err)
	}
	if stored != nil {
		if stored.Setup.BaseURL != setup.BaseURL {
			return nil, nil, false, &SetupChangedError{Property: "setup.baseUrl", Stored: stored.Setup.BaseURL, Given: setup.BaseURL}
		}
		if stored.Setup.UpstreamURL != setup.UpstreamURL {
			return nil, nil, false, &SetupChangedError{Property: "plugin.mirroring.upstream.url", Stored: stored.Setup.UpstreamURL, Given: setup.UpstreamURL}
		}
		signer, err := readKey(stored.KeyFile)
		if err != nil {
			return nil, nil, false, err
		}
		return stored, signer, false, nil
	}
	if err := check(ctx); err != nil {
		return nil, nil, false, fmt.Errorf("mirror: setup refused: the upstream %s failed the HTTPS check: %w", setup.UpstreamURL, err)
	}
	id, err := newID()
	if err != nil {
		return nil, nil, false, err
	}
	keyFile := filepath.Join(home, "shared", "config", KeyFileName)
	signer, err := writeNewKey(keyFile, "gitfleet-mirror-"+id)
	if err != nil {
		return nil, nil, false, err
	}
	ident := &identity{ID: id, Setup: setup, KeyFile: keyFile, Created: now}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(nodeBucket)
		if err != nil {
			return err
		}
		if _, err := b.CreateBucketIfNotExists(reposBucket); err != nil {
			return err
		}
		v, err := json.Marshal(ident)
		if err != nil {
			return err
		}
		return b.Put(identityKey, v)
	})
	if err != nil {
		return nil, nil, false, fmt.Errorf("mirror: store setup: %w", err)
	}
	return ident, signer, true, nil
}

// writeNewKey generates an Ed25519 key and writes it atomically to path (0600) in
// OpenSSH format, with the public line in path.pub.
func writeNewKey(path, comment string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("mirror: create key directory: %w", err)
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("mirror: write key: %w", err)
	}
	if err := writeFileAtomic(path+".pub", []byte(authorizedLine(signer.PublicKey())+" "+comment+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("mirror: write public key: %w", err)
	}
	return signer, nil
}

// readKey reads the mirror key and refuses a file others can read.
func readKey(path string) (ssh.Signer, error) {
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
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("mirror: parse key %s: %w", path, err)
	}
	return signer, nil
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
