package mirror

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

// parseAuthorizedKey parses one authorized_keys line and checks the key against
// policy.
func parseAuthorizedKey(line string, policy gitfleet.KeyPolicy) (ssh.PublicKey, error) {
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
	if err := policy.Check(pub); err != nil {
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
