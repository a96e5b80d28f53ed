package mirror

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ErrKeyType is returned for a public key gitfleet does not accept from a mirror.
var ErrKeyType = errors.New("mirror: key type not accepted")

// CheckKey reports whether pub is a key gitfleet accepts: Ed25519, ECDSA, the FIDO
// sk- variants, and RSA of at least 2048 bits. DSA is refused.
func CheckKey(pub ssh.PublicKey) error {
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return nil
	case ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return fmt.Errorf("%w: unreadable RSA key", ErrKeyType)
		}
		rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok || rk.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA keys need at least 2048 bits", ErrKeyType)
		}
		return nil
	default:
		return fmt.Errorf("%w: %s", ErrKeyType, pub.Type())
	}
}

// parseAuthorizedKey parses one authorized_keys line and checks the key type.
func parseAuthorizedKey(line string) (ssh.PublicKey, error) {
	if strings.ContainsAny(line, "\r\n") {
		return nil, errors.New("public key must be a single authorized_keys line")
	}
	pub, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("public key: %v", err)
	}
	if len(opts) > 0 || len(rest) > 0 {
		return nil, errors.New("public key must carry no options")
	}
	if err := CheckKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// authorizedLine returns pub as an authorized_keys line without a newline.
func authorizedLine(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// validID reports whether id is a lower-case UUID.
func validID(id string) bool { return uuidRE.MatchString(id) }

// newID returns a random (version 4) UUID.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

var projectKeyRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,127}$`)

// validProjectKey reports whether key is a project key: an upper-case letter then
// upper-case letters, digits or underscores.
func validProjectKey(key string) bool { return projectKeyRE.MatchString(key) }
