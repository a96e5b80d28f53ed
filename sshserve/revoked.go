package sshserve

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

// ErrKeyList is wrapped by every error of ParseTrustedUserCAKeys and
// ParseRevocationList; the message names the file and line.
var ErrKeyList = errors.New("sshserve: bad key list line")

// ErrRevoked is wrapped by the errors that refuse a revoked key or certificate.
var ErrRevoked = errors.New("sshserve: key revoked")

// LoadTrustedUserCAKeys reads a file of certificate authority keys, one public
// key per line in authorized_keys form without options ("ssh-ed25519 AAAA...
// comment"), as OpenSSH's TrustedUserCAKeys file. Blank lines and '#' comments
// are skipped. A line that does not parse, holds options or a certificate, or
// a key that gitfleet's default key policy refuses (DSA, RSA below 2048 bits)
// is an error naming the file and line.
func LoadTrustedUserCAKeys(path string) ([]ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sshserve: %w", err)
	}
	return ParseTrustedUserCAKeys(path, data)
}

// ParseTrustedUserCAKeys parses the content of a TrustedUserCAKeys file; name is
// used in errors as the file name. See LoadTrustedUserCAKeys.
func ParseTrustedUserCAKeys(name string, data []byte) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, err := parseKeyLine(line)
		if err == nil {
			err = checkCAKey(key, gitfleet.KeyPolicy{Types: keyTypesFor(DefaultPublicKeyAlgorithms())})
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrKeyList, name, n+1, err)
		}
		keys = append(keys, key)
	}
	return keys, nil
}

// checkCAKey applies the key policy to a certificate authority's key.
func checkCAKey(key ssh.PublicKey, policy gitfleet.KeyPolicy) error {
	if _, ok := key.(*ssh.Certificate); ok {
		return errors.New("a certificate cannot be a certificate authority")
	}
	if err := policy.Check(key); err != nil {
		return fmt.Errorf("certificate authority %s: %w", ssh.FingerprintSHA256(key), err)
	}
	return nil
}

// parseKeyLine parses one public key in authorized_keys form, refusing options
// and anything after the key's comment.
func parseKeyLine(line []byte) (ssh.PublicKey, error) {
	key, _, options, rest, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return nil, err
	}
	if len(options) > 0 {
		return nil, fmt.Errorf("options are not allowed here (%q)", printable(strings.Join(options, ",")))
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("more than one key on the line")
	}
	return key, nil
}

// SerialRange is a range of certificate serial numbers, both ends included.
type SerialRange struct {
	First, Last uint64
}

// RevocationList lists keys and certificates that must not authenticate, like
// OpenSSH's RevokedKeys. A key listed is refused as a plain key, as the key of
// a certificate and as the key of a certificate authority (every certificate
// it signed is then refused). Serials and key IDs revoke certificates of every
// trusted authority.
type RevocationList struct {
	// Keys are revoked public keys.
	Keys []ssh.PublicKey
	// Serials are revoked certificate serial numbers.
	Serials []SerialRange
	// KeyIDs are revoked certificate key IDs (ssh-keygen -I), compared exactly.
	KeyIDs []string
}

// LoadRevocationList reads a revocation file. Each line, blank lines and '#'
// comments aside, is one of:
//
//	ssh-ed25519 AAAA... comment   a revoked key (also "key: ssh-ed25519 AAAA...")
//	serial: 42                    a revoked certificate serial
//	serial: 100-199               a range of serials, both ends included
//	id: alice@laptop              a revoked certificate key ID
//
// as in the text form ssh-keygen -k reads to make a KRL (whose binary form is not
// read). A certificate is not a key here: list its serial, its key ID or the
// key it certifies. Serial 0 is
// refused, as ssh-keygen refuses it: certificates issued without -z all carry
// it. Errors name the file and line.
func LoadRevocationList(path string) (*RevocationList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sshserve: %w", err)
	}
	return ParseRevocationList(path, data)
}

// ParseRevocationList parses the content of a revocation file; name is used in
// errors as the file name. See LoadRevocationList.
func ParseRevocationList(name string, data []byte) (*RevocationList, error) {
	r := &RevocationList{}
	for n, raw := range bytes.Split(data, []byte("\n")) {
		line := strings.TrimSpace(string(raw))
		if line == "" || line[0] == '#' {
			continue
		}
		if err := r.parseLine(line); err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrKeyList, name, n+1, err)
		}
	}
	return r, nil
}

func (r *RevocationList) parseLine(line string) error {
	kind, value, _ := strings.Cut(line, ":")
	value = strings.TrimSpace(value)
	switch strings.ToLower(strings.TrimSpace(kind)) {
	case "serial":
		lo, hi, isRange := strings.Cut(value, "-")
		first, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 64)
		if err != nil {
			return fmt.Errorf("serial %q is not a number", printable(value))
		}
		last := first
		if isRange {
			if last, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 64); err != nil || last < first {
				return fmt.Errorf("serial range %q is not N-M with N <= M", printable(value))
			}
		}
		if first == 0 {
			return errors.New("serial 0 cannot be revoked: every certificate issued without a serial (ssh-keygen -z) carries it; revoke those by key or key ID")
		}
		r.Serials = append(r.Serials, SerialRange{first, last})
	case "id":
		if value == "" {
			return errors.New("empty key ID")
		}
		r.KeyIDs = append(r.KeyIDs, value)
	case "key":
		return r.addKey(value)
	default:
		return r.addKey(line)
	}
	return nil
}

func (r *RevocationList) addKey(text string) error {
	key, err := parseKeyLine([]byte(text))
	if err != nil {
		return fmt.Errorf("not a public key, serial: or id: line: %v", err)
	}
	if cert, ok := key.(*ssh.Certificate); ok {
		return fmt.Errorf("a certificate cannot be listed: revoke it by \"serial: %d\" or \"id: %s\", or revoke its key (the .pub it was issued for)",
			cert.Serial, printable(cert.KeyId))
	}
	r.Keys = append(r.Keys, key)
	return nil
}

// Check returns an error wrapping ErrRevoked when key is revoked: a plain key
// listed in Keys, or a certificate whose key or authority is listed, or whose
// serial or key ID is. It returns nil for anything else, and for a nil list.
func (r *RevocationList) Check(key ssh.PublicKey) error {
	if r == nil {
		return nil
	}
	cert, isCert := key.(*ssh.Certificate)
	if !isCert {
		if r.hasKey(key) {
			return fmt.Errorf("%w: key %s is listed", ErrRevoked, ssh.FingerprintSHA256(key))
		}
		return nil
	}
	switch {
	case r.hasKey(cert.Key):
		return fmt.Errorf("%w: the certificate's key %s is listed", ErrRevoked, ssh.FingerprintSHA256(cert.Key))
	case cert.SignatureKey != nil && r.hasKey(cert.SignatureKey):
		return fmt.Errorf("%w: the certificate authority %s is listed", ErrRevoked, ssh.FingerprintSHA256(cert.SignatureKey))
	}
	for _, s := range r.Serials {
		if cert.Serial >= s.First && cert.Serial <= s.Last {
			return fmt.Errorf("%w: certificate serial %d is listed", ErrRevoked, cert.Serial)
		}
	}
	for _, id := range r.KeyIDs {
		if id == cert.KeyId {
			return fmt.Errorf("%w: certificate key ID %q is listed", ErrRevoked, printable(cert.KeyId))
		}
	}
	return nil
}

func (r *RevocationList) hasKey(key ssh.PublicKey) bool {
	m := key.Marshal()
	for _, k := range r.Keys {
		if bytes.Equal(k.Marshal(), m) {
			return true
		}
	}
	return false
}
