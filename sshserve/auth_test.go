package sshserve_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// logBuffer collects a server's text logs for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// dialGo connects a Go SSH client to srv with the given auth methods.
func dialGo(t *testing.T, srv *sshservetest.Server, auth ...ssh.AuthMethod) (*ssh.Client, error) {
	t.Helper()
	c, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User:              "git",
		Auth:              auth,
		HostKeyCallback:   ssh.FixedHostKey(srv.HostKey),
		HostKeyAlgorithms: []string{srv.HostKey.Type()},
	})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func whoami(t *testing.T, c *ssh.Client) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output("whoami")
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	return string(out)
}

// offerOnly offers a public key without ever signing with it: the client asks
// whether the key would be accepted, then gives up on it.
type offerOnly struct{ pub ssh.PublicKey }

func (o offerOnly) PublicKey() ssh.PublicKey { return o.pub }
func (o offerOnly) Sign(io.Reader, []byte) (*ssh.Signature, error) {
	return nil, errors.New("this key is only offered")
}

// dialSequence authenticates with the given public-key methods in order, one per
// attempt, whatever the server answers.
func dialSequence(t *testing.T, srv *sshservetest.Server, signers ...ssh.Signer) (*ssh.Client, error) {
	t.Helper()
	next := 0
	c, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		User:              "git",
		HostKeyCallback:   ssh.FixedHostKey(srv.HostKey),
		HostKeyAlgorithms: []string{srv.HostKey.Type()},
		AuthCallback: func(*ssh.ClientAuthContext) (ssh.AuthMethod, error) {
			if next == len(signers) {
				return nil, errors.New("no more keys")
			}
			next++
			return ssh.PublicKeys(signers[next-1]), nil
		},
	})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// TestIdentityComesFromTheAuthenticatingKey is the regression test for the bug
// class of CVE-2024-45337: the server's key callback runs for keys a client merely
// offers, so an identity recorded there can belong to a key the client never
// proved it holds. Here the client offers bob's key, then alice's (both accepted
// by the server as queries), then authenticates with bob's key: the session must
// act as bob, with bob's permissions.
func TestIdentityComesFromTheAuthenticatingKey(t *testing.T) {
	srv := sshservetest.NewServer(t)
	srv.SeedRepo("PROJ", "repo")
	alice := srv.AddUser("alice", sshservetest.Write("*"))
	bob := srv.AddUser("bob")

	for _, seq := range [][]ssh.Signer{
		{offerOnly{alice.Signer.PublicKey()}, bob.Signer},
		{offerOnly{bob.Signer.PublicKey()}, offerOnly{alice.Signer.PublicKey()}, bob.Signer},
	} {
		c, err := dialSequence(t, srv, seq...)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if got := whoami(t, c); got != "bob\n" {
			t.Fatalf("after offering alice's key and authenticating with bob's, whoami = %q", got)
		}
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		s.Stderr = &stderr
		err = s.Run("git-upload-pack 'PROJ/repo.git'")
		if err == nil || !strings.Contains(stderr.String(), "Repository not found") {
			t.Fatalf("bob read a repository only alice may read: %v %q", err, stderr.String())
		}
	}
	// Offering alice's key without its private half does not get in at all.
	if _, err := dialSequence(t, srv, offerOnly{alice.Signer.PublicKey()}); err == nil {
		t.Fatal("authenticated with a key the client does not hold")
	}
}

// TestSecurityKeys authenticates with sk-ssh-ed25519 and sk-ecdsa-sha2-nistp256
// keys, and refuses a signature without the user-presence flag.
func TestSecurityKeys(t *testing.T) {
	srv := sshservetest.NewServer(t)
	for _, kind := range []string{ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256} {
		t.Run(kind, func(t *testing.T) {
			sk := newSKSigner(t, kind)
			u := srv.AddUser("sk-" + kind)
			srv.AddKey(u, sk.PublicKey())
			c, err := dialGo(t, srv, ssh.PublicKeys(sk))
			if err != nil {
				t.Fatalf("dial with %s: %v", kind, err)
			}
			if got := whoami(t, c); got != u.Name+"\n" {
				t.Fatalf("whoami = %q", got)
			}
			sk.flags = 0 // no touch
			if _, err := dialGo(t, srv, ssh.PublicKeys(sk)); err == nil {
				t.Fatal("accepted a security-key signature without user presence")
			}
		})
	}
}

// TestKeyPolicy refuses DSA and short RSA keys at login with the reason in the
// log, and SHA-1 RSA signatures by default.
func TestKeyPolicy(t *testing.T) {
	var logs logBuffer
	srv := sshservetest.NewServer(t, sshservetest.WithLogger(logs.logger()))
	cases := []struct {
		kt     testutil.KeyType
		ok     bool
		reason string
	}{
		{testutil.Ed25519, true, ""},
		{testutil.ECDSA384, true, ""},
		{testutil.ECDSA521, true, ""},
		{testutil.RSA2048, true, ""},
		{testutil.RSA1024, false, "RSA keys must have at least 2048 bits; this one has 1024"},
		{testutil.DSA, false, "ssh-dss"},
	}
	for _, tc := range cases {
		t.Run(string(tc.kt), func(t *testing.T) {
			key := testutil.GenerateKey(t, tc.kt)
			u := srv.AddUser("policy-" + string(tc.kt))
			srv.AddKey(u, key.Public)
			_, err := dialGo(t, srv, ssh.PublicKeys(key.Signer))
			if tc.ok != (err == nil) {
				t.Fatalf("login with %s: %v, want ok=%v", tc.kt, err, tc.ok)
			}
			if !tc.ok {
				mustContain(t, "log", logs.String(), tc.reason)
			}
		})
	}
	t.Run("ssh-rsa SHA-1 signature", func(t *testing.T) {
		key := testutil.GenerateKey(t, testutil.RSA2048)
		u := srv.AddUser("sha1")
		srv.AddKey(u, key.Public)
		sha1, err := ssh.NewSignerWithAlgorithms(key.Signer.(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSA})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dialGo(t, srv, ssh.PublicKeys(sha1)); err == nil {
			t.Fatal("accepted an ssh-rsa (SHA-1) signature")
		}
	})
	t.Run("OpenSSH client with RSA-1024", func(t *testing.T) {
		key := testutil.GenerateKey(t, testutil.RSA1024)
		u := srv.AddUser("short-rsa")
		srv.AddKey(u, key.Public)
		_, stderr, err := testutil.NewSSH(t, "git", srv.Host, srv.Port, key, srv.KnownHosts).Run("whoami")
		if err == nil {
			t.Fatal("OpenSSH logged in with a 1024-bit RSA key")
		}
		mustContain(t, "ssh stderr", stderr, "Permission denied")
	})
	_ = rand.Reader
}
