package sshserve

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"golang.org/x/crypto/ssh"
)

type fakeMeta struct{}

func (fakeMeta) User() string          { return "git" }
func (fakeMeta) SessionID() []byte     { return []byte("s") }
func (fakeMeta) ClientVersion() []byte { return []byte("SSH-2.0-test") }
func (fakeMeta) ServerVersion() []byte { return []byte("SSH-2.0-gitfleet") }
func (fakeMeta) RemoteAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (fakeMeta) LocalAddr() net.Addr   { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }

// TestPrincipalOnlyFromTheVerifiedKey checks the glue under the regression test
// TestIdentityComesFromTheAuthenticatingKey directly: a principal made for one key
// is refused when another key is verified, and a principal that was never verified
// is never used.
func TestPrincipalOnlyFromTheVerifiedKey(t *testing.T) {
	alice, _ := testPublicKey(t)
	bob, _ := testPublicKey(t)
	names := map[string]string{string(alice.Marshal()): "alice", string(bob.Marshal()): "bob"}
	s := &Server{PublicKeyCallback: func(_ context.Context, _ ConnInfo, k ssh.PublicKey) (Principal, error) {
		return Principal{Name: names[string(k.Marshal())]}, nil
	}}
	s.keyTypes = keyTypesFor(DefaultPublicKeyAlgorithms())
	c := &conn{srv: s, ctx: context.Background(), log: slog.New(slog.DiscardHandler)}

	permsA, err := c.publicKeyCallback(fakeMeta{}, alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := principalOf(permsA); err == nil {
		t.Fatal("a principal was usable before its key was verified")
	}
	if _, err := c.verifiedPublicKeyCallback(fakeMeta{}, bob, permsA, ssh.KeyAlgoED25519); err == nil {
		t.Fatal("bob's verified key was given alice's principal")
	}
	if _, err := principalOf(permsA); err == nil {
		t.Fatal("alice's principal became usable after bob's key was verified")
	}
	perms, err := c.verifiedPublicKeyCallback(fakeMeta{}, alice, permsA, ssh.KeyAlgoED25519)
	if err != nil {
		t.Fatal(err)
	}
	p, err := principalOf(perms)
	if err != nil || p.Name != "alice" || p.Key == nil {
		t.Fatalf("principal %+v, %v", p, err)
	}
	if _, err := principalOf(nil); err == nil {
		t.Fatal("nil permissions gave a principal")
	}
}
