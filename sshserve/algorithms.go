package sshserve

import (
	"fmt"
	"runtime"
	"slices"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/cpu"
)

// DefaultKeyExchanges are the key exchanges offered when Server.KeyExchanges is
// nil: every key exchange of OpenSSH 9.2's server default that x/crypto implements,
// with the post-quantum hybrid mlkem768x25519-sha256 first (x/crypto adds
// curve25519-sha256@libssh.org after curve25519-sha256 by itself). Nothing based on
// SHA-1. OpenSSH's sntrup761x25519-sha512 and diffie-hellman-group18-sha512 are not
// implemented by x/crypto; every client that offers them also offers one of these
// (see OpenSSHServerDefaults).
func DefaultKeyExchanges() []string {
	return []string{
		ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519,
		ssh.KeyExchangeECDHP256, ssh.KeyExchangeECDHP384, ssh.KeyExchangeECDHP521,
		ssh.KeyExchangeDHGEXSHA256, ssh.KeyExchangeDH16SHA512, ssh.KeyExchangeDH14SHA256,
	}
}

// DefaultCiphers are the ciphers offered when Server.Ciphers is nil: those of
// OpenSSH 9.2's server default (no CBC), in the server's order of preference, the
// cheapest for the server first: AES-GCM, then ChaCha20-Poly1305, then AES-CTR
// (which needs a separate MAC). On CPUs without AES instructions ChaCha20-Poly1305
// comes first.
//
// The order matters because sshserve, not the client, chooses: it offers each
// client the first cipher of this list that the client supports (see the package
// documentation, "Algorithms"), so OpenSSH clients, which list
// chacha20-poly1305@openssh.com first, run on AES-GCM, while clients without
// AES-GCM (Dropbear, libssh2, paramiko) still connect. The cipher benchmark in the
// package documentation gives what each costs.
func DefaultCiphers() []string {
	if hasAESHardware() {
		return []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305,
			ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR}
	}
	return []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES128GCM, ssh.CipherAES256GCM,
		ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR}
}

// hasAESHardware reports whether AES-GCM runs on dedicated instructions here.
func hasAESHardware() bool {
	switch runtime.GOARCH {
	case "amd64", "386":
		return cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ
	case "arm64":
		return cpu.ARM64.HasAES && cpu.ARM64.HasPMULL
	case "s390x":
		return cpu.S390X.HasAES && cpu.S390X.HasAESGCM
	case "ppc64", "ppc64le":
		return true
	}
	return false
}

// DefaultMACs are the MACs offered when Server.MACs is nil: those of OpenSSH
// 9.2's server default that x/crypto implements, encrypt-then-MAC first. (The
// AEAD ciphers carry their own authentication and use no MAC; these matter only
// with AES-CTR.) OpenSSH's UMAC MACs and hmac-sha1-etm are not implemented by
// x/crypto; every client that offers them also offers one of these.
func DefaultMACs() []string {
	return []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM, ssh.HMACSHA256, ssh.HMACSHA512, ssh.HMACSHA1}
}

// OpenSSHServerDefaults are the algorithms OpenSSH 9.2's sshd offers with its
// default configuration (sshd -T prints them), by kind: "kex", "cipher", "mac",
// "hostkey" and "pubkey" (PubkeyAcceptedAlgorithms, certificates included). For
// "hostkey" they are the algorithms of the host keys a stock Debian install
// generates (Ed25519, ECDSA P-256 and RSA), which LoadOrCreateHostKeys generates
// too. They are the reference the defaults are tested against: every name here is
// offered by a Server with default settings unless NotImplemented gives the reason
// it cannot be.
func OpenSSHServerDefaults() map[string][]string {
	return map[string][]string{
		"kex": {"sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com", "curve25519-sha256",
			"curve25519-sha256@libssh.org", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
			"diffie-hellman-group-exchange-sha256", "diffie-hellman-group16-sha512",
			"diffie-hellman-group18-sha512", "diffie-hellman-group14-sha256"},
		"cipher": {"chacha20-poly1305@openssh.com", "aes128-ctr", "aes192-ctr", "aes256-ctr",
			"aes128-gcm@openssh.com", "aes256-gcm@openssh.com"},
		"mac": {"umac-64-etm@openssh.com", "umac-128-etm@openssh.com", "hmac-sha2-256-etm@openssh.com",
			"hmac-sha2-512-etm@openssh.com", "hmac-sha1-etm@openssh.com", "umac-64@openssh.com",
			"umac-128@openssh.com", "hmac-sha2-256", "hmac-sha2-512", "hmac-sha1"},
		"hostkey": {"ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"},
		"pubkey": {"ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
			"ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
			"sk-ssh-ed25519-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
			"rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com", "ssh-ed25519",
			"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
			"sk-ecdsa-sha2-nistp256@openssh.com", "rsa-sha2-512", "rsa-sha2-256"},
	}
}

// NotImplemented names the algorithms of OpenSSHServerDefaults that sshserve
// cannot offer, each with the reason and what a client that offers it uses
// instead.
func NotImplemented() map[string]string {
	return map[string]string{
		"sntrup761x25519-sha512":             "x/crypto has no Streamlined NTRU Prime; clients that offer it also offer mlkem768x25519-sha256 (OpenSSH 9.9 and later) or curve25519-sha256",
		"sntrup761x25519-sha512@openssh.com": "as sntrup761x25519-sha512",
		"diffie-hellman-group18-sha512":      "x/crypto has no 8192-bit group; clients that offer it also offer diffie-hellman-group16-sha512 or a curve",
		"umac-64-etm@openssh.com":            "x/crypto has no UMAC; clients that offer it also offer hmac-sha2-256-etm@openssh.com",
		"umac-128-etm@openssh.com":           "as umac-64-etm@openssh.com",
		"umac-64@openssh.com":                "as umac-64-etm@openssh.com",
		"umac-128@openssh.com":               "as umac-64-etm@openssh.com",
		"hmac-sha1-etm@openssh.com":          "x/crypto has no SHA-1 encrypt-then-MAC; clients that offer it also offer hmac-sha1 or a SHA-2 MAC",
	}
}

// kexCurve25519LibSSH is curve25519-sha256's older name, which x/crypto
// implements and offers beside it but does not list among its supported names.
const kexCurve25519LibSSH = "curve25519-sha256@libssh.org"

// algorithms is the configuration every connection shares.
type algorithms struct {
	kex, ciphers, macs, publicKey []string
}

// transportAlgorithms applies the Disabled* lists to the configured or default
// algorithms. Names x/crypto does not know are refused, so that a typo does not
// silently change what is offered.
func (s *Server) transportAlgorithms() (algorithms, error) {
	supported := ssh.SupportedAlgorithms()
	insecure := ssh.InsecureAlgorithms()
	pick := func(kind string, list, def, disabled, known []string) ([]string, error) {
		if list == nil {
			list = def
		}
		for _, a := range append(slices.Clone(list), disabled...) {
			if !slices.Contains(known, a) {
				return nil, fmt.Errorf("sshserve: unknown %s %q", kind, a)
			}
		}
		var out []string
		for _, a := range list {
			if !slices.Contains(disabled, a) {
				out = append(out, a)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("sshserve: every %s is disabled", kind)
		}
		return out, nil
	}
	var a algorithms
	var err error
	if a.kex, err = pick("key exchange", s.KeyExchanges, DefaultKeyExchanges(), s.DisabledKeyExchanges,
		append(append(supported.KeyExchanges, insecure.KeyExchanges...), kexCurve25519LibSSH)); err != nil {
		return a, err
	}
	if a.ciphers, err = pick("cipher", s.Ciphers, DefaultCiphers(), s.DisabledCiphers,
		append(supported.Ciphers, insecure.Ciphers...)); err != nil {
		return a, err
	}
	if a.macs, err = pick("MAC", s.MACs, DefaultMACs(), s.DisabledMACs,
		append(supported.MACs, insecure.MACs...)); err != nil {
		return a, err
	}
	return a, nil
}

// serverConfig returns the x/crypto configuration for connection c. It is built
// per connection so that the callbacks can reach the connection's state.
func (c *conn) serverConfig() *ssh.ServerConfig {
	s := c.srv
	version := s.ServerVersion
	if version == "" {
		version = "SSH-2.0-gitfleet"
	}
	cfg := &ssh.ServerConfig{
		Config: ssh.Config{
			KeyExchanges: s.algos.kex,
			Ciphers:      s.algos.ciphers,
			MACs:         s.algos.macs,
		},
		PublicKeyAuthAlgorithms:   s.algos.publicKey,
		MaxAuthTries:              s.MaxAuthTries,
		PublicKeyCallback:         c.publicKeyCallback,
		VerifiedPublicKeyCallback: c.verifiedPublicKeyCallback,
		AuthLogCallback:           c.authLog,
		ServerVersion:             version,
	}
	if cfg.MaxAuthTries == 0 {
		cfg.MaxAuthTries = DefaultMaxAuthTries
	}
	for _, k := range s.HostKeys {
		cfg.AddHostKey(hostKeySigner(k))
	}
	return cfg
}

// authLog counts and logs failed authentication attempts. The "none" probe every
// client starts with is not a failure worth counting.
func (c *conn) authLog(meta ssh.ConnMetadata, method string, err error) {
	if err == nil || method == "none" {
		return
	}
	c.srv.stats.authFailures.Add(1)
	c.log.Info("authentication failed", "conn", c.id, "remote", addrString(c.remote), "user", printable(meta.User()),
		"method", method, "err", err)
}

// info returns the ConnInfo the callbacks see during authentication.
func (c *conn) infoFor(meta ssh.ConnMetadata) ConnInfo {
	return ConnInfo{ID: c.id, User: meta.User(), RemoteAddr: c.remote, LocalAddr: c.local, ClientVersion: string(meta.ClientVersion())}
}

// hostKeySigner restricts an RSA host key to SHA-2 signatures (rsa-sha2-512,
// rsa-sha2-256): x/crypto would also sign with SHA-1 "ssh-rsa", which OpenSSH has
// refused by default since 8.8. Other keys are returned unchanged.
func hostKeySigner(k ssh.Signer) ssh.Signer {
	if k.PublicKey().Type() != ssh.KeyAlgoRSA {
		return k
	}
	as, ok := k.(ssh.AlgorithmSigner)
	if !ok {
		return k
	}
	if m, isMulti := k.(ssh.MultiAlgorithmSigner); isMulti && !slices.Contains(m.Algorithms(), ssh.KeyAlgoRSA) {
		return k // restricted already
	}
	ms, err := ssh.NewSignerWithAlgorithms(as, []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256})
	if err != nil {
		return k
	}
	return ms
}
