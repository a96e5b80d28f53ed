package testutil

import (
	"crypto"
	"crypto/dsa" //nolint:staticcheck // DSA keys exist only so tests can show they are refused.
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// KeyType names a kind of SSH key the fixtures can generate.
type KeyType string

// The key types tests use. RSA1024 and DSA exist to show that they are refused.
const (
	Ed25519  KeyType = "ed25519"
	ECDSA256 KeyType = "ecdsa-p256"
	ECDSA384 KeyType = "ecdsa-p384"
	ECDSA521 KeyType = "ecdsa-p521"
	RSA2048  KeyType = "rsa-2048"
	RSA3072  KeyType = "rsa-3072"
	RSA1024  KeyType = "rsa-1024"
	DSA      KeyType = "dsa"
	RSA4096  KeyType = "rsa-4096"
)

// AllKeyTypes lists every key type GenerateKey knows, the good ones first.
var AllKeyTypes = []KeyType{Ed25519, ECDSA256, ECDSA384, ECDSA521, RSA2048, RSA3072, RSA4096, RSA1024, DSA}

// Key is a generated SSH key pair.
type Key struct {
	Type          KeyType
	Private       crypto.Signer // the raw private key (nil for DSA)
	Signer        ssh.Signer
	Public        ssh.PublicKey
	PrivatePEM    []byte // OpenSSH private key format
	AuthorizedKey string // one authorized_keys line, without a trailing newline
	Path          string // the private key file (0600) for ssh -i; Path+".pub" holds AuthorizedKey
}

// GenerateKey generates a key of type kt, writes it (0600) and its .pub to a
// temporary directory, and returns it.
func GenerateKey(t testing.TB, kt KeyType) *Key {
	t.Helper()
	k, err := NewKey(kt, "test-"+string(kt))
	if err != nil {
		t.Fatalf("generate %s key: %v", kt, err)
	}
	if err := k.WriteTo(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	return k
}

// NewKey generates a key of type kt in memory, with comment on its public line.
func NewKey(kt KeyType, comment string) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch kt {
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ECDSA256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSA384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ECDSA521:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case RSA1024, RSA2048, RSA3072, RSA4096:
		bits := map[KeyType]int{RSA1024: 1024, RSA2048: 2048, RSA3072: 3072, RSA4096: 4096}[kt]
		priv, err = rsa.GenerateKey(rand.Reader, bits)
	case DSA:
		return newDSAKey(comment)
	default:
		return nil, fmt.Errorf("testutil: unknown key type %q", kt)
	}
	if err != nil {
		return nil, err
	}
	return keyFrom(kt, priv, priv, comment)
}

func newDSAKey(comment string) (*Key, error) {
	var k dsa.PrivateKey
	if err := dsa.GenerateParameters(&k.Parameters, rand.Reader, dsa.L1024N160); err != nil {
		return nil, err
	}
	if err := dsa.GenerateKey(&k, rand.Reader); err != nil {
		return nil, err
	}
	s, err := ssh.NewSignerFromKey(&k)
	if err != nil {
		return nil, err
	}
	// OpenSSH's own format has no DSA writer in x/crypto; the legacy PEM form is
	// read by both OpenSSH and ssh.ParsePrivateKey.
	der, err := asn1.Marshal(struct {
		Version       int
		P, Q, G, Y, X *big.Int
	}{0, k.P, k.Q, k.G, k.Y, k.X})
	if err != nil {
		return nil, err
	}
	return &Key{
		Type:          DSA,
		Signer:        s,
		Public:        s.PublicKey(),
		PrivatePEM:    pem.EncodeToMemory(&pem.Block{Type: "DSA PRIVATE KEY", Bytes: der}),
		AuthorizedKey: authorizedLine(s.PublicKey(), comment),
	}, nil
}

func authorizedLine(pub ssh.PublicKey, comment string) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		line += " " + comment
	}
	return line
}

func keyFrom(kt KeyType, signer crypto.Signer, raw any, comment string) (*Key, error) {
	s, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(raw, comment)
	if err != nil {
		return nil, err
	}
	return &Key{
		Type:          kt,
		Private:       signer,
		Signer:        s,
		Public:        s.PublicKey(),
		PrivatePEM:    pem.EncodeToMemory(block),
		AuthorizedKey: authorizedLine(s.PublicKey(), comment),
	}, nil
}

// WriteTo writes the private key as dir/id_<type> (0600) and its public line as
// id_<type>.pub, and records the path in k.Path.
func (k *Key) WriteTo(dir string) error {
	p := filepath.Join(dir, "id_"+strings.ReplaceAll(string(k.Type), "-", "_"))
	if err := os.WriteFile(p, k.PrivatePEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(p+".pub", []byte(k.AuthorizedKey+"\n"), 0o644); err != nil {
		return err
	}
	k.Path = p
	return nil
}

// Fingerprint returns the SHA256 fingerprint of the public key, as ssh-keygen -l
// prints it.
func (k *Key) Fingerprint() string { return ssh.FingerprintSHA256(k.Public) }
