package mesh

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Request tokens. Every sidecar request carries, in the Authorization header,
//
//	Gitfleet v1.<unix seconds>.<nonce hex>.<base64url HMAC-SHA256>
//
// where the MAC covers "v1.<unix seconds>.<nonce>.<METHOD> <path>" under the key
// the supervisor handed the sidecar. A token is accepted for TokenLifetime after it
// was made and up to MaxClockSkew before, and only for the method and path it names.
const (
	TokenLifetime = 30 * time.Second
	MaxClockSkew  = 5 * time.Second
	// KeySize is the size of a token key made by NewKey.
	KeySize = 32
)

// ErrUnauthorized is returned when the sidecar refuses a request's token.
var ErrUnauthorized = errors.New("mesh: sidecar refused the request token")

// NewKey returns a random token key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// makeToken returns a token for method and path made at now.
func makeToken(key []byte, method, path string, now time.Time) string {
	nonce := make([]byte, 8)
	rand.Read(nonce)
	head := "v1." + strconv.FormatInt(now.Unix(), 10) + "." + hex.EncodeToString(nonce)
	return head + "." + tokenMAC(key, head, method, path)
}

func tokenMAC(key []byte, head, method, path string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(head + "." + method + " " + path))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkToken verifies a token for method and path at now.
func checkToken(key []byte, token, method, path string, now time.Time) error {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return fmt.Errorf("%w: malformed", ErrUnauthorized)
	}
	head, mac := token[:i], token[i+1:]
	f := strings.Split(head, ".")
	if len(f) != 3 || f[0] != "v1" {
		return fmt.Errorf("%w: malformed", ErrUnauthorized)
	}
	if !hmac.Equal([]byte(mac), []byte(tokenMAC(key, head, method, path))) {
		return fmt.Errorf("%w: bad signature", ErrUnauthorized)
	}
	sec, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed", ErrUnauthorized)
	}
	made := time.Unix(sec, 0)
	if now.Before(made.Add(-MaxClockSkew)) {
		return fmt.Errorf("%w: made in the future", ErrUnauthorized)
	}
	if now.After(made.Add(TokenLifetime)) {
		return fmt.Errorf("%w: expired", ErrUnauthorized)
	}
	return nil
}
