package sshserve_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/big"
	"testing"

	"golang.org/x/crypto/ssh"
)

// skSigner stands in for a FIDO security key: it makes sk-ssh-ed25519@openssh.com
// and sk-ecdsa-sha2-nistp256@openssh.com signatures in the format of OpenSSH's
// PROTOCOL.u2f (flags byte and counter after the signature), which ssh-keygen
// cannot produce without a device.
type skSigner struct {
	ed      ed25519.PrivateKey
	ec      *ecdsa.PrivateKey
	app     string
	flags   byte // 0x01 = user present
	counter uint32
	pub     ssh.PublicKey
}

const skUserPresent = 0x01

func newSKSigner(t *testing.T, kind string) *skSigner {
	t.Helper()
	s := &skSigner{app: "ssh:", flags: skUserPresent, counter: 7}
	var blob []byte
	switch kind {
	case ssh.KeyAlgoSKED25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.ed = priv
		blob = ssh.Marshal(struct {
			Name        string
			Key         []byte
			Application string
		}{kind, pub, s.app})
	case ssh.KeyAlgoSKECDSA256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.ec = priv
		ecdhPub, err := priv.PublicKey.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		blob = ssh.Marshal(struct {
			Name        string
			Curve       string
			Key         []byte
			Application string
		}{kind, "nistp256", ecdhPub.Bytes(), s.app})
	default:
		t.Fatalf("unknown sk key type %s", kind)
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		t.Fatalf("parse %s public key: %v", kind, err)
	}
	s.pub = pub
	return s
}

func (s *skSigner) PublicKey() ssh.PublicKey { return s.pub }

func (s *skSigner) Sign(rnd io.Reader, data []byte) (*ssh.Signature, error) {
	appDigest := sha256.Sum256([]byte(s.app))
	dataDigest := sha256.Sum256(data)
	signed := make([]byte, 0, 32+1+4+32)
	signed = append(signed, appDigest[:]...)
	signed = append(signed, s.flags)
	signed = binary.BigEndian.AppendUint32(signed, s.counter)
	signed = append(signed, dataDigest[:]...)
	rest := ssh.Marshal(struct {
		Flags   byte
		Counter uint32
	}{s.flags, s.counter})
	s.counter++
	if s.ed != nil {
		return &ssh.Signature{Format: s.pub.Type(), Blob: ed25519.Sign(s.ed, signed), Rest: rest}, nil
	}
	digest := sha256.Sum256(signed)
	r, ss, err := ecdsa.Sign(rnd, s.ec, digest[:])
	if err != nil {
		return nil, err
	}
	return &ssh.Signature{Format: s.pub.Type(), Blob: ssh.Marshal(struct{ R, S *big.Int }{r, ss}), Rest: rest}, nil
}
