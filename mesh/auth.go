package mesh

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request tokens. Every sidecar request carries, in the Authorization header,
//
//	Gitfleet v2.<unix seconds>.<nonce hex>.<base64url HMAC-SHA256>
//
// where the MAC covers "v2.<unix seconds>.<nonce>.<METHOD> <path>\n" followed by
// the request's binding (requestBinding: its query, the SHA-256 of its body and
// every X-Gitfleet-* header), under the key the supervisor handed the sidecar. A
// token is accepted for TokenLifetime after it was made and up to MaxClockSkew
// before, only for the request it was made for, and once: the server remembers
// the nonces it has accepted until their tokens expire.
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

// requestBinding is what a token binds besides the method and path: the raw
// query, the SHA-256 of the body, and the X-Gitfleet-* headers (names in
// canonical form, sorted; one line each), so that a token cannot be replayed with
// another query, body, repository or service.
func requestBinding(rawQuery string, body []byte, h http.Header) string {
	sum := sha256.Sum256(body)
	var b strings.Builder
	b.WriteString("q=" + rawQuery + "\nb=" + hex.EncodeToString(sum[:]) + "\n")
	var names []string
	for name := range h {
		if strings.HasPrefix(name, "X-Gitfleet-") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range h[name] {
			b.WriteString(name + ":" + v + "\n")
		}
	}
	return b.String()
}

// makeToken returns a token for method, path and binding made at now.
func makeToken(key []byte, method, path, binding string, now time.Time) string {
	nonce := make([]byte, 12)
	rand.Read(nonce)
	head := "v2." + strconv.FormatInt(now.Unix(), 10) + "." + hex.EncodeToString(nonce)
	return head + "." + tokenMAC(key, head, method, path, binding)
}

func tokenMAC(key []byte, head, method, path, binding string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(head + "." + method + " " + path + "\n" + binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkToken verifies a token for method, path and binding at now, and returns
// its nonce and the time it was made, for the replay check.
func checkToken(key []byte, token, method, path, binding string, now time.Time) (nonce string, made time.Time, err error) {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return "", time.Time{}, fmt.Errorf("%w: malformed", ErrUnauthorized)
	}
	head, mac := token[:i], token[i+1:]
	f := strings.Split(head, ".")
	if len(f) != 3 || f[0] != "v2" {
		return "", time.Time{}, fmt.Errorf("%w: malformed", ErrUnauthorized)
	}
	if !hmac.Equal([]byte(mac), []byte(tokenMAC(key, head, method, path, binding))) {
		return "", time.Time{}, fmt.Errorf("%w: bad signature", ErrUnauthorized)
	}
	sec, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: malformed", ErrUnauthorized)
	}
	made = time.Unix(sec, 0)
	if now.Before(made.Add(-MaxClockSkew)) {
		return "", time.Time{}, fmt.Errorf("%w: made in the future", ErrUnauthorized)
	}
	if now.After(made.Add(TokenLifetime)) {
		return "", time.Time{}, fmt.Errorf("%w: expired", ErrUnauthorized)
	}
	return f[2], made, nil
}

// nonceCache remembers the nonces of accepted tokens until those tokens expire.
type nonceCache struct {
	mu        sync.Mutex
	seen      map[string]time.Time // nonce -> when its token expires
	lastPrune time.Time
}

// use records nonce, whose token was made at made, and reports whether it is
// new. Expired entries are dropped at most once a second.
func (c *nonceCache) use(nonce string, made, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[string]time.Time{}
	}
	if now.Sub(c.lastPrune) >= time.Second {
		for n, exp := range c.seen {
			if now.After(exp) {
				delete(c.seen, n)
			}
		}
		c.lastPrune = now
	}
	if _, dup := c.seen[nonce]; dup {
		return false
	}
	c.seen[nonce] = made.Add(TokenLifetime + time.Second)
	return true
}
