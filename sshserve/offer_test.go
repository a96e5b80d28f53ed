package sshserve_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

// certBase maps a certificate algorithm to the signature algorithm its key signs
// with, as the server checks it against PublicKeyAlgorithms.
func certBase(alg string) string {
	switch alg {
	case "sk-ssh-ed25519-cert-v01@openssh.com":
		return "sk-ssh-ed25519@openssh.com"
	case "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com":
		return "sk-ecdsa-sha2-nistp256@openssh.com"
	}
	return strings.TrimSuffix(alg, "-cert-v01@openssh.com")
}

// offeredByDefault returns what a Server with default settings offers of kind.
func offeredByDefault(t *testing.T, kind string) []string {
	switch kind {
	case "kex":
		kex := sshserve.DefaultKeyExchanges()
		if slices.Contains(kex, ssh.KeyExchangeCurve25519) {
			kex = append(kex, "curve25519-sha256@libssh.org") // x/crypto adds the old name
		}
		return kex
	case "cipher":
		return sshserve.DefaultCiphers()
	case "mac":
		return sshserve.DefaultMACs()
	case "pubkey":
		return sshserve.DefaultPublicKeyAlgorithms()
	case "hostkey":
		keys, err := sshserve.LoadOrCreateHostKeys(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		var algs []string
		for _, k := range keys {
			if k.PublicKey().Type() == ssh.KeyAlgoRSA {
				algs = append(algs, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
				continue
			}
			algs = append(algs, k.PublicKey().Type())
		}
		return algs
	}
	t.Fatalf("unknown kind %q", kind)
	return nil
}

// TestDefaultsCoverOpenSSH checks the rule for the default algorithm lists: they
// hold every algorithm OpenSSH 9.2's sshd offers by default, but those x/crypto
// cannot implement (each listed with its reason), and nothing OpenSSH has turned
// off (SHA-1 signatures and key exchanges, DSA, CBC, RC4, 3DES).
func TestDefaultsCoverOpenSSH(t *testing.T) {
	missing := sshserve.NotImplemented()
	for kind, names := range sshserve.OpenSSHServerDefaults() {
		ours := offeredByDefault(t, kind)
		for _, name := range names {
			want := name
			if kind == "pubkey" {
				want = certBase(name)
			}
			if slices.Contains(ours, want) {
				if _, ok := missing[name]; ok {
					t.Errorf("%s %s is offered but listed as not implemented", kind, name)
				}
				continue
			}
			if reason := missing[name]; reason == "" {
				t.Errorf("%s %s of OpenSSH's defaults is not offered and not listed as not implemented", kind, name)
			}
		}
		for _, a := range ours {
			if strings.Contains(a, "cbc") || strings.Contains(a, "arcfour") || strings.Contains(a, "3des") ||
				kind == "kex" && strings.HasSuffix(a, "-sha1") || a == ssh.KeyAlgoRSA || a == ssh.KeyAlgoDSA || a == ssh.InsecureHMACSHA196 {
				t.Errorf("%s %s is offered by default, but OpenSSH has turned it off", kind, a)
			}
		}
	}
	for name := range missing {
		found := false
		for _, names := range sshserve.OpenSSHServerDefaults() {
			found = found || slices.Contains(names, name)
		}
		if !found {
			t.Errorf("NotImplemented lists %s, which is not among OpenSSH's defaults", name)
		}
	}
}

// TestOpenSSHDefaultsMatchSshd compares OpenSSHServerDefaults with what the
// installed OpenSSH 9.2 sshd prints for its default configuration.
func TestOpenSSHDefaultsMatchSshd(t *testing.T) {
	sshd := testutil.Require(t, "sshd")
	version, _ := exec.Command(sshd, "-V").CombinedOutput()
	if !strings.HasPrefix(string(version), "OpenSSH_9.2") {
		t.Skipf("sshd is %q, not OpenSSH 9.2: its defaults differ by design", strings.TrimSpace(string(version)))
	}
	key := testutil.GenerateKey(t, testutil.Ed25519)
	dir := t.TempDir()
	if err := key.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sshd, "-T", "-f", "/dev/null", "-h", key.Path).CombinedOutput()
	if err != nil {
		t.Fatalf("sshd -T: %v\n%s", err, out)
	}
	printed := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok {
			printed[k] = strings.Split(v, ",")
		}
	}
	defaults := sshserve.OpenSSHServerDefaults()
	for kind, key := range map[string]string{"kex": "kexalgorithms", "cipher": "ciphers", "mac": "macs", "pubkey": "pubkeyacceptedalgorithms"} {
		if !slices.Equal(printed[key], defaults[kind]) {
			t.Errorf("%s: sshd -T prints %v, OpenSSHServerDefaults has %v", kind, printed[key], defaults[kind])
		}
	}
}

// TestEveryDefaultAlgorithmWithOpenSSH connects the real OpenSSH client once for
// each algorithm of OpenSSH's defaults that sshserve offers, restricted to that
// one algorithm, and checks that it is the one negotiated.
func TestEveryDefaultAlgorithmWithOpenSSH(t *testing.T) {
	srv := sshservetest.NewServer(t)
	c := sshAs(t, srv, srv.User)
	missing := sshserve.NotImplemented()
	defaults := sshserve.OpenSSHServerDefaults()
	for _, kind := range []string{"kex", "cipher", "mac", "hostkey"} {
		for _, name := range defaults[kind] {
			if missing[name] != "" {
				continue
			}
			t.Run(kind+"/"+name, func(t *testing.T) {
				var opts []string
				var want string
				switch kind {
				case "kex":
					opts, want = []string{"-o", "KexAlgorithms=" + name}, "kex: algorithm: "+name
				case "cipher":
					opts, want = []string{"-o", "Ciphers=" + name}, "cipher: "+name
				case "mac":
					// A MAC is used only with a cipher that has none of its own.
					opts, want = []string{"-o", "Ciphers=aes128-ctr", "-o", "MACs=" + name}, "MAC: "+name
				case "hostkey":
					opts, want = []string{"-o", "HostKeyAlgorithms=" + name}, "kex: host key algorithm: "+name
				}
				out, stderr, err := c.Run(append(append([]string{"-v"}, opts...), "whoami")...)
				if err != nil || out != sshservetest.DefaultUser+"\n" {
					t.Fatalf("ssh %v: %q %v\n%s", opts, out, err, stderr)
				}
				mustContain(t, "ssh -v", stderr, want)
			})
		}
	}
}

// TestNoSHA1HostKeySignature: an RSA host key signs with SHA-2 only, as OpenSSH's
// does since 8.8; a client that asks for "ssh-rsa" host keys is refused.
func TestNoSHA1HostKeySignature(t *testing.T) {
	srv := sshservetest.NewServer(t)
	c := sshAs(t, srv, srv.User)
	if out, stderr, err := c.Run("-v", "-o", "HostKeyAlgorithms=ssh-rsa", "whoami"); err == nil {
		t.Fatalf("connected with an ssh-rsa (SHA-1) host key signature: %q", out)
	} else {
		mustContain(t, "ssh", stderr, "no matching host key type found")
	}
	out, stderr, err := c.Run("-v", "-o", "HostKeyAlgorithms=rsa-sha2-256", "whoami")
	if err != nil || out != sshservetest.DefaultUser+"\n" {
		t.Fatalf("rsa-sha2-256: %q %v\n%s", out, err, stderr)
	}
	mustContain(t, "ssh -v", stderr, "kex: host key algorithm: rsa-sha2-256")
}

// TestServerChoosesCipher shows the server's choice at work: OpenSSH's client
// lists chacha20-poly1305 first, yet by default it runs on AES-GCM; a client that
// has no AES-GCM gets the next cipher of the server's list that it has; with
// ClientChooses the client's own preference wins.
func TestServerChoosesCipher(t *testing.T) {
	first := sshserve.DefaultCiphers()[0]
	srv := sshservetest.NewServer(t)
	c := sshAs(t, srv, srv.User)
	_, stderr, err := c.Run("-v", "whoami")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	mustContain(t, "ssh -v", stderr, "cipher: "+first)
	_, stderr, err = c.Run("-v", "-o", "Ciphers=aes256-ctr,aes128-ctr", "-o", "MACs=hmac-sha2-512,hmac-sha2-256-etm@openssh.com", "whoami")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	// The server's order: aes128-ctr before aes256-ctr, ETM before plain.
	mustContain(t, "ssh -v", stderr, "cipher: aes128-ctr MAC: hmac-sha2-256-etm@openssh.com")
	if got := srv.Stats().Ciphers; got[first] != 1 || got[ssh.CipherAES128CTR] != 1 {
		t.Fatalf("Stats.Ciphers = %v", got)
	}

	free := sshservetest.NewServer(t, func(s *sshserve.Server) { s.ClientChooses = true })
	_, stderr, err = sshAs(t, free, free.User).Run("-v", "whoami")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	mustContain(t, "ssh -v", stderr, "cipher: chacha20-poly1305@openssh.com")
}
