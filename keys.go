package gitfleet

import (
	"crypto/rsa"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// DefaultMinRSABits is the smallest RSA key a zero KeyPolicy accepts.
const DefaultMinRSABits = 2048

// KeyPolicy says which public keys may authenticate: users' keys at SSH login and
// when they are added, a mirror's key when it registers. The zero value is
// gitfleet's default: Ed25519, ECDSA (P-256, P-384, P-521), their FIDO "sk-"
// variants, and RSA of at least DefaultMinRSABits bits; DSA is refused, and so
// is a certificate presented as a key (sshserve accepts OpenSSH user
// certificates only from its trusted authorities, applying this policy to the
// certified key and to the authority's key).
type KeyPolicy struct {
	// MinRSABits is the smallest RSA modulus accepted; zero means
	// DefaultMinRSABits. A value below 1024 is treated as 1024.
	MinRSABits int
	// Types, when not nil, restricts the accepted key types further (values of
	// ssh.PublicKey.Type, such as ssh.KeyAlgoED25519); a type outside the default
	// set stays refused.
	Types []string
}

// acceptedTypes are the key types gitfleet ever accepts.
var acceptedTypes = [...]string{
	ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519,
	ssh.KeyAlgoECDSA256, ssh.KeyAlgoSKECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
	ssh.KeyAlgoRSA,
}

// SignatureAlgorithms returns the signature algorithms gitfleet accepts from the
// keys a KeyPolicy accepts, strongest and fastest first: no SHA-1 RSA signatures
// ("ssh-rsa") and no DSA ("ssh-dss"); RSA keys sign with rsa-sha2-512 or -256.
// SSH authentication and mirrors' signed API calls both check against it. Each
// call returns a new slice.
func SignatureAlgorithms() []string {
	return []string{
		ssh.KeyAlgoED25519,
		ssh.KeyAlgoSKED25519,
		ssh.KeyAlgoECDSA256,
		ssh.KeyAlgoSKECDSA256,
		ssh.KeyAlgoECDSA384,
		ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA512,
		ssh.KeyAlgoRSASHA256,
	}
}

// MinRSA returns the smallest RSA modulus the policy accepts.
func (p KeyPolicy) MinRSA() int {
	switch {
	case p.MinRSABits == 0:
		return DefaultMinRSABits
	case p.MinRSABits < 1024:
		return 1024
	}
	return p.MinRSABits
}

// Check reports whether pub may authenticate. A refusal wraps ErrKeyRejected and
// says, in words an administrator can act on, what to use instead.
func (p KeyPolicy) Check(pub ssh.PublicKey) error {
	t := pub.Type()
	ok := false
	for _, a := range acceptedTypes {
		ok = ok || a == t
	}
	if ok && p.Types != nil {
		ok = false
		for _, a := range p.Types {
			ok = ok || a == t
		}
	}
	if !ok {
		if t == ssh.KeyAlgoDSA { //nolint:staticcheck // named to refuse it
			return fmt.Errorf("%w: DSA keys are not accepted; use Ed25519 (ssh-keygen -t ed25519)", ErrKeyRejected)
		}
		return fmt.Errorf("%w: key type %s is not accepted; use Ed25519, ECDSA or RSA >= %d", ErrKeyRejected, t, p.MinRSA())
	}
	if t == ssh.KeyAlgoRSA {
		if bits := RSABits(pub); bits < p.MinRSA() {
			return fmt.Errorf("%w: RSA keys must have at least %d bits; this one has %d", ErrKeyRejected, p.MinRSA(), bits)
		}
	}
	return nil
}

// RSABits returns the modulus size of an RSA public key, or 0 for any other key.
func RSABits(pub ssh.PublicKey) int {
	if cpk, ok := pub.(ssh.CryptoPublicKey); ok {
		if rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey); ok {
			return rk.N.BitLen()
		}
	}
	return 0
}
