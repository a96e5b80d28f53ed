package main

import (
	"crypto/rsa"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// keyBits returns an RSA key's modulus size, or 0 for other key types.
func keyBits(pub ssh.PublicKey) int {
	if cpk, ok := pub.(ssh.CryptoPublicKey); ok {
		if rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey); ok {
			return rk.N.BitLen()
		}
	}
	return 0
}

// keyPolicy refuses keys the SSH server would refuse at login anyway, so that an
// administrator learns it when adding the key rather than when a clone fails.
func (a *app) keyPolicy(pub ssh.PublicKey) error {
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return nil
	case ssh.KeyAlgoRSA:
		if bits := keyBits(pub); bits < 2048 {
			return fmt.Errorf("RSA keys must have at least 2048 bits; this one has %d", bits)
		}
		return nil
	case ssh.KeyAlgoDSA: //nolint:staticcheck // named to refuse it
		return fmt.Errorf("DSA keys are not accepted; use Ed25519 (ssh-keygen -t ed25519)")
	}
	return fmt.Errorf("key type %s is not accepted; use Ed25519, ECDSA or RSA >= 2048", pub.Type())
}
