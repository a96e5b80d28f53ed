package sshserve_test

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

func dialWith(t *testing.T, srv *sshservetest.Server, cfg ssh.Config) error {
	t.Helper()
	c, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
		Config:            cfg,
		User:              "git",
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(srv.User.Signer)},
		HostKeyCallback:   ssh.FixedHostKey(srv.HostKey),
		HostKeyAlgorithms: []string{srv.HostKey.Type()},
	})
	if err == nil {
		c.Close()
	}
	return err
}

func TestAlgorithms(t *testing.T) {
	srv := sshservetest.NewServer(t)
	cases := []struct {
		name string
		cfg  ssh.Config
		ok   bool
	}{
		{"mlkem768x25519", ssh.Config{KeyExchanges: []string{ssh.KeyExchangeMLKEM768X25519}}, true},
		{"curve25519", ssh.Config{KeyExchanges: []string{ssh.KeyExchangeCurve25519}}, true},
		{"aes128-gcm", ssh.Config{Ciphers: []string{ssh.CipherAES128GCM}}, true},
		{"aes256-gcm", ssh.Config{Ciphers: []string{ssh.CipherAES256GCM}}, true},
		{"diffie-hellman-group14-sha1", ssh.Config{KeyExchanges: []string{ssh.InsecureKeyExchangeDH14SHA1}}, false},
		{"diffie-hellman-group14-sha256", ssh.Config{KeyExchanges: []string{ssh.KeyExchangeDH14SHA256}}, true},
		{"diffie-hellman-group-exchange-sha256", ssh.Config{KeyExchanges: []string{ssh.KeyExchangeDHGEXSHA256}}, true},
		{"diffie-hellman-group-exchange-sha1", ssh.Config{KeyExchanges: []string{ssh.InsecureKeyExchangeDHGEXSHA1}}, false},
		{"ecdh-sha2-nistp256", ssh.Config{KeyExchanges: []string{ssh.KeyExchangeECDHP256}}, true},
		{"chacha20-poly1305", ssh.Config{Ciphers: []string{ssh.CipherChaCha20Poly1305}}, true},
		{"aes128-ctr", ssh.Config{Ciphers: []string{ssh.CipherAES128CTR}}, true},
		{"aes128-cbc", ssh.Config{Ciphers: []string{ssh.InsecureCipherAES128CBC}}, false},
		{"3des-cbc", ssh.Config{Ciphers: []string{ssh.InsecureCipherTripleDESCBC}}, false},
		{"ctr with hmac-sha1", ssh.Config{Ciphers: []string{ssh.CipherAES128CTR}, MACs: []string{ssh.HMACSHA1}}, true},
		{"ctr with hmac-sha1-96", ssh.Config{Ciphers: []string{ssh.CipherAES128CTR}, MACs: []string{ssh.InsecureHMACSHA196}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := dialWith(t, srv, tc.cfg); (err == nil) != tc.ok {
				t.Fatalf("dial: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	t.Run("OpenSSH negotiates curve25519 and an AEAD cipher", func(t *testing.T) {
		cmd := sshAs(t, srv, srv.User).Command("-v", "whoami")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		mustContain(t, "ssh -v", string(out), "kex: algorithm: curve25519-sha256")
		if !strings.Contains(string(out), "cipher: aes128-gcm@openssh.com") &&
			!(strings.Contains(string(out), "cipher: chacha20-poly1305@openssh.com") && slices.Contains(sshserve.DefaultCiphers(), ssh.CipherChaCha20Poly1305)) {
			t.Fatalf("no AEAD cipher negotiated:\n%s", out)
		}
	})
}

// TestChaCha20WhenConfigured shows ChaCha20-Poly1305 works when listed, with the
// Go client and with OpenSSH.
func TestChaCha20WhenConfigured(t *testing.T) {
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) {
		s.Ciphers = []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM}
	})
	if err := dialWith(t, srv, ssh.Config{Ciphers: []string{ssh.CipherChaCha20Poly1305}}); err != nil {
		t.Fatal(err)
	}
	out, err := sshAs(t, srv, srv.User).Command("-v", "-c", "chacha20-poly1305@openssh.com", "whoami").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mustContain(t, "ssh -v", string(out), "cipher: chacha20-poly1305@openssh.com")
}

// TestDisabledAlgorithms applies Bitbucket's plugin.ssh.disabled.* lists.
func TestDisabledAlgorithms(t *testing.T) {
	srv := sshservetest.NewServer(t, func(s *sshserve.Server) {
		s.DisabledKeyExchanges = []string{ssh.KeyExchangeMLKEM768X25519}
		s.Ciphers = []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM, ssh.CipherAES128GCM}
		s.DisabledCiphers = []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM}
	})
	if err := dialWith(t, srv, ssh.Config{KeyExchanges: []string{ssh.KeyExchangeMLKEM768X25519}}); err == nil {
		t.Fatal("disabled key exchange used")
	}
	if err := dialWith(t, srv, ssh.Config{Ciphers: []string{ssh.CipherChaCha20Poly1305}}); err == nil {
		t.Fatal("disabled cipher used")
	}
	c := sshAs(t, srv, srv.User)
	if _, _, err := c.Run("-c", "chacha20-poly1305@openssh.com", "whoami"); err == nil {
		t.Fatal("OpenSSH used a disabled cipher")
	}
	if out, stderr, err := c.Run("-c", "aes256-gcm@openssh.com", "whoami"); err != nil || out != sshservetest.DefaultUser+"\n" {
		t.Fatalf("allowed cipher: %q %v %s", out, err, stderr)
	}
}

func TestAlgorithmConfigErrors(t *testing.T) {
	key := testutil.GenerateKey(t, testutil.Ed25519)
	for name, s := range map[string]*sshserve.Server{
		"unknown cipher":  {DisabledCiphers: []string{"aes512-magic"}},
		"unknown kex":     {KeyExchanges: []string{"sntrup761x25519-sha512@openssh.com"}},
		"all MACs off":    {DisabledMACs: sshserve.DefaultMACs()},
		"all kex off":     {DisabledKeyExchanges: sshserve.DefaultKeyExchanges()},
		"no host keys":    {HostKeys: []ssh.Signer{}},
		"all ciphers off": {DisabledCiphers: sshserve.DefaultCiphers()},
	} {
		t.Run(name, func(t *testing.T) {
			if name != "no host keys" {
				s.HostKeys = []ssh.Signer{key.Signer}
			}
			if err := s.Serve(testutil.Listen(t)); err == nil || err == sshserve.ErrServerClosed {
				t.Fatalf("Serve = %v, want a configuration error", err)
			}
		})
	}
}
