package sshserve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

// PrincipalKind says what kind of identity a Principal is.
type PrincipalKind int

// The kinds of principal.
const (
	// KindUser is a person's account.
	KindUser PrincipalKind = iota
	// KindProjectKey is an access key scoped to one project.
	KindProjectKey
	// KindRepoKey is an access key scoped to one repository.
	KindRepoKey
)

func (k PrincipalKind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindProjectKey:
		return "project-key"
	case KindRepoKey:
		return "repo-key"
	}
	return fmt.Sprintf("PrincipalKind(%d)", int(k))
}

// Principal is the identity a connection acts as. It comes only from the public key
// (or certificate) that completed authentication.
type Principal struct {
	// Name is what whoami prints and logs show: a user name, or an access key's label.
	Name string
	// ID is an opaque identifier for the caller's own use (a user or key id).
	ID string
	// Kind says whether this is a user or an access key.
	Kind PrincipalKind
	// Project and Slug scope an access key (Slug is empty for a project key). The
	// server does not act on them: the Authorizer does.
	Project, Slug string
	// Key is the public key that authenticated the connection: for a
	// certificate login, the *ssh.Certificate (its Key field is the user's key,
	// its KeyId, Serial and ValidPrincipals what the authority certified). The
	// server sets it; a value returned by a callback is overwritten.
	Key ssh.PublicKey
}

// Access is the kind of access a request needs.
type Access int

// The kinds of access.
const (
	AccessRead Access = iota + 1
	AccessWrite
)

func (a Access) String() string {
	switch a {
	case AccessRead:
		return "read"
	case AccessWrite:
		return "write"
	}
	return fmt.Sprintf("Access(%d)", int(a))
}

// ConnInfo describes a client connection to the callbacks.
type ConnInfo struct {
	// ID numbers the server's connections from 1; logs carry it as "conn".
	ID uint64
	// User is the user name the client sent (normally "git"); the server does not
	// act on it.
	User string
	// RemoteAddr is the client's address: the source address of an accepted PROXY
	// protocol header, else the TCP peer.
	RemoteAddr net.Addr
	// LocalAddr is the address the client connected to (the PROXY header's
	// destination when one was accepted).
	LocalAddr net.Addr
	// ClientVersion is the client's SSH version string.
	ClientVersion string
}

// PublicKeyCallback maps a public key to the principal it belongs to, or returns an
// error to refuse the key. It is called for every key a client offers, including
// keys the client then never proves it holds, so it must not have side effects
// (such as recording a login); the principal used for the connection is always the
// one returned for the key that completed authentication. Keys are first checked
// against the server's key policy. The error text is logged, never sent.
type PublicKeyCallback func(ctx context.Context, conn ConnInfo, key ssh.PublicKey) (Principal, error)

// Authorizer decides whether principal p may have access to repository
// project/slug. It returns nil to allow; ErrDenied or ErrNotFound (or any other
// error) to refuse with the generic NotFoundMessage; or a *DeniedError to refuse
// with a message of its own. Errors other than ErrDenied, ErrNotFound and
// *DeniedError are logged at warning level.
type Authorizer func(ctx context.Context, conn ConnInfo, p Principal, project, slug string, access Access) error

// DefaultMinRSABits is the smallest RSA key accepted when Server.MinRSABits is zero
// (gitfleet.DefaultMinRSABits).
const DefaultMinRSABits = gitfleet.DefaultMinRSABits

// DefaultPublicKeyAlgorithms are the signature algorithms accepted for client
// authentication when Server.PublicKeyAlgorithms is nil:
// gitfleet.SignatureAlgorithms (no SHA-1 RSA signatures, "ssh-rsa", and no DSA,
// "ssh-dss"; RSA keys sign with rsa-sha2-256 or -512).
func DefaultPublicKeyAlgorithms() []string { return gitfleet.SignatureAlgorithms() }

// keyTypesFor returns the public key types that the signature algorithms algos can
// authenticate.
func keyTypesFor(algos []string) []string {
	var types []string
	for _, a := range algos {
		t := a
		switch a {
		case ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512:
			t = ssh.KeyAlgoRSA
		}
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	return types
}

// ErrKeyPolicy is wrapped by the errors that refuse a key for its type or size. It
// is gitfleet.ErrKeyRejected, so either spelling matches with errors.Is.
var ErrKeyPolicy = gitfleet.ErrKeyRejected

// checkKey enforces the key policy: gitfleet's KeyPolicy with the server's
// MinRSABits, restricted to the key types that the accepted signature algorithms
// can authenticate.
func checkKey(key ssh.PublicKey, types []string, minRSA int) error {
	return gitfleet.KeyPolicy{MinRSABits: minRSA, Types: types}.Check(key)
}

// Keys under which the authentication callbacks leave their results in
// ssh.Permissions.ExtraData.
type (
	principalKey struct{}
	verifiedKey  struct{}
)

// publicKeyCallback is the x/crypto/ssh PublicKeyCallback of connection c: a
// certificate goes to certificateCallback; a plain key is refused when it is a
// trusted certificate authority's or revoked, then checked against the key
// policy, then given to the user's callback. The principal rides in the
// Permissions that x/crypto keeps with this very key.
func (c *conn) publicKeyCallback(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	s := c.srv
	if cert, ok := key.(*ssh.Certificate); ok {
		return c.certificateCallback(meta, cert)
	}
	if s.isTrustedCA(key) {
		err := fmt.Errorf("%w: the key of a trusted certificate authority cannot log in as a user", ErrKeyPolicy)
		c.log.Info("public key refused", "conn", c.id, "remote", c.remote, "type", key.Type(),
			"fingerprint", ssh.FingerprintSHA256(key), "reason", err)
		s.stats.reject(RejectKeyPolicy)
		return nil, err
	}
	if err := s.Revoked.Check(key); err != nil {
		c.log.Info("public key refused", "conn", c.id, "remote", c.remote, "type", key.Type(),
			"fingerprint", ssh.FingerprintSHA256(key), "reason", err)
		s.stats.reject(RejectRevoked)
		return nil, err
	}
	if err := checkKey(key, s.keyTypes, s.minRSABits()); err != nil {
		c.log.Info("public key refused", "conn", c.id, "remote", c.remote, "type", key.Type(),
			"fingerprint", ssh.FingerprintSHA256(key), "reason", err)
		s.stats.reject(RejectKeyPolicy)
		return nil, err
	}
	if s.PublicKeyCallback == nil {
		return nil, errors.New("sshserve: no PublicKeyCallback configured")
	}
	p, err := s.PublicKeyCallback(c.ctx, c.infoFor(meta), key)
	if err != nil {
		return nil, err
	}
	p.Key = key
	return &ssh.Permissions{ExtraData: map[any]any{principalKey{}: &p}}, nil
}

// verifiedPublicKeyCallback runs once the client has proved it holds key. It checks
// that the principal in perms was made for this key and marks it verified; only a
// verified principal is ever used by a session.
func (c *conn) verifiedPublicKeyCallback(meta ssh.ConnMetadata, key ssh.PublicKey, perms *ssh.Permissions, _ string) (*ssh.Permissions, error) {
	p, _ := perms.ExtraData[principalKey{}].(*Principal)
	if p == nil || p.Key == nil || !bytes.Equal(p.Key.Marshal(), key.Marshal()) {
		return nil, errors.New("sshserve: principal does not belong to the verified key")
	}
	perms.ExtraData[verifiedKey{}] = true
	return perms, nil
}

// principalOf returns the principal of an authenticated connection, or an error if
// the permissions do not carry one verified for the authenticating key.
func principalOf(perms *ssh.Permissions) (Principal, error) {
	if perms == nil {
		return Principal{}, errors.New("sshserve: connection without permissions")
	}
	p, _ := perms.ExtraData[principalKey{}].(*Principal)
	if ok, _ := perms.ExtraData[verifiedKey{}].(bool); !ok || p == nil {
		return Principal{}, errors.New("sshserve: connection without a verified principal")
	}
	return *p, nil
}
