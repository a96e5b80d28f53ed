package sshserve

import (
	"fmt"
	"runtime"
	"slices"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/cpu"
)

// DefaultKeyExchanges are the key exchanges offered when Server.KeyExchanges is
// nil: the post-quantum hybrid mlkem768x25519-sha256 and curve25519-sha256
// (x/crypto has no sntrup761). Nothing based on SHA-1.
func DefaultKeyExchanges() []string {
	return []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519}
}

// DefaultCiphers are the ciphers offered when Server.Ciphers is nil: AES-GCM, and
// ChaCha20-Poly1305 only on CPUs without AES instructions. All are authenticated
// encryption; no CBC, no CTR with a separate MAC.
//
// ChaCha20-Poly1305 is fully supported (list it in Server.Ciphers), but it is left
// out by default where AES is in hardware: the client picks the cipher, OpenSSH
// clients pick chacha20-poly1305@openssh.com whenever a server offers it, and
// x/crypto's ChaCha20 has no assembly on amd64, so it costs the server several
// times the CPU of AES-GCM per byte (the 40,000-object clone benchmark in the
// package documentation measures the difference).
func DefaultCiphers() []string {
	if hasAESHardware() {
		return []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM}
	}
	return []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305}
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

// DefaultMACs are the MACs offered when Server.MACs is nil: encrypt-then-MAC with
// SHA-2. (The default ciphers carry their own authentication and use no MAC; these
// matter only when a CTR cipher is configured.)
func DefaultMACs() []string {
	return []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM}
}

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
		append(supported.KeyExchanges, insecure.KeyExchanges...)); err != nil {
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
		cfg.AddHostKey(k)
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
