package sshserve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// CertificateCallback maps an OpenSSH user certificate to the principal it
// authenticates, or returns an error to refuse it. The server calls it only for
// a certificate that it has verified: signed by one of Server.TrustedUserCAKeys
// with an accepted signature algorithm, a user certificate within its validity
// window, not revoked, naming at least one principal, whose critical options
// are all honoured and whose key passes the key policy. Like a
// PublicKeyCallback it is called for certificates the client then never proves
// it holds, so it must not have side effects; the error text is logged, never
// sent. PrincipalsCallback makes one from a lookup by name.
type CertificateCallback func(ctx context.Context, conn ConnInfo, cert *ssh.Certificate) (Principal, error)

// PrincipalsCallback returns a CertificateCallback that maps a certificate
// through lookup, a function from a principal name (ssh-keygen -n) to the
// embedder's principal, usually the same lookup of users by name the embedder
// already has. Exactly one of the certificate's principals must map: none
// refuses the certificate, and so do two or more (a certificate must not be
// able to choose which of several accounts it logs in as).
func PrincipalsCallback(lookup func(ctx context.Context, conn ConnInfo, name string) (Principal, error)) CertificateCallback {
	return func(ctx context.Context, conn ConnInfo, cert *ssh.Certificate) (Principal, error) {
		var found []Principal
		var errs []error
		for _, name := range cert.ValidPrincipals {
			p, err := lookup(ctx, conn, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("principal %q: %w", printable(name), err))
				continue
			}
			found = append(found, p)
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
			return Principal{}, fmt.Errorf("sshserve: no principal of certificate %q names a known user: %w", printable(cert.KeyId), errors.Join(errs...))
		}
		return Principal{}, fmt.Errorf("sshserve: certificate %q names %d known users %q; it must name one", printable(cert.KeyId), len(found), cert.ValidPrincipals)
	}
}

// Critical options of OpenSSH user certificates (PROTOCOL.certkeys).
const (
	optSourceAddress  = "source-address"
	optForceCommand   = "force-command"
	optVerifyRequired = "verify-required"
)

// isTrustedCA reports whether key is one of the trusted certificate authorities.
func (s *Server) isTrustedCA(key ssh.PublicKey) bool {
	m := key.Marshal()
	for _, ca := range s.TrustedUserCAKeys {
		if bytes.Equal(ca.Marshal(), m) {
			return true
		}
	}
	return false
}

// certRefusal is why a certificate is refused, with the Stats reason it counts
// under.
type certRefusal struct {
	reason string // RejectCertificate, RejectRevoked or RejectKeyPolicy
	err    error
}

// checkCertificate applies every rule a certificate must pass before
// CertificateCallback sees it; remote is the client's address (after any PROXY
// header), now the server's clock.
func (s *Server) checkCertificate(cert *ssh.Certificate, remote netip.Addr, now time.Time) *certRefusal {
	refuse := func(format string, args ...any) *certRefusal {
		return &certRefusal{RejectCertificate, fmt.Errorf("sshserve: certificate refused: "+format, args...)}
	}
	if len(s.TrustedUserCAKeys) == 0 {
		return refuse("no certificate authority is trusted (Server.TrustedUserCAKeys)")
	}
	if cert.CertType != ssh.UserCert {
		return refuse("a host certificate cannot authenticate a user")
	}
	if cert.SignatureKey == nil || !s.isTrustedCA(cert.SignatureKey) {
		fp := "none"
		if cert.SignatureKey != nil {
			fp = ssh.FingerprintSHA256(cert.SignatureKey)
		}
		return refuse("signed by %s, which is not a trusted certificate authority", fp)
	}
	if err := s.Revoked.Check(cert); err != nil {
		return &certRefusal{RejectRevoked, err}
	}
	if cert.Signature == nil || !slices.Contains(s.algos.publicKey, cert.Signature.Format) {
		format := "none"
		if cert.Signature != nil {
			format = cert.Signature.Format
		}
		return refuse("the authority signed it with %s, which is not accepted (SHA-1 \"ssh-rsa\" signatures never are; sign with ssh-keygen -t rsa-sha2-512)", printable(format))
	}
	if err := checkKey(cert.Key, s.keyTypes, s.minRSABits()); err != nil {
		return &certRefusal{RejectKeyPolicy, fmt.Errorf("sshserve: certificate refused: its key: %w", err)}
	}
	if len(cert.ValidPrincipals) == 0 {
		return refuse("it names no principal (issue it with ssh-keygen -n NAME)")
	}
	unix := now.Unix()
	if unix < 0 || uint64(unix) < cert.ValidAfter {
		return refuse("not valid before %s", certTime(cert.ValidAfter))
	}
	if cert.ValidBefore != ssh.CertTimeInfinity && uint64(unix) >= cert.ValidBefore {
		return refuse("expired at %s", certTime(cert.ValidBefore))
	}
	var supported []string
	for name, value := range cert.CriticalOptions {
		switch name {
		case optSourceAddress:
			if err := matchSourceAddress(value, remote); err != nil {
				return refuse("%v", err)
			}
		case optForceCommand:
			return refuse("critical option force-command is not supported: this server runs only git commands, and a forced command cannot be honoured")
		case optVerifyRequired:
			return refuse("critical option verify-required is not supported: the server cannot tell whether a security key verified its user")
		default:
			return refuse("unknown critical option %q", printable(name))
		}
		supported = append(supported, name)
	}
	// The signature (and, again, the validity window) with x/crypto's checker.
	checker := ssh.CertChecker{SupportedCriticalOptions: supported, Clock: func() time.Time { return now }}
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		return refuse("%v", err)
	}
	return nil
}

// certTime formats a certificate time for logs.
func certTime(t uint64) string {
	if t > 1<<62 {
		return "forever"
	}
	return time.Unix(int64(t), 0).UTC().Format(time.RFC3339)
}

// matchSourceAddress checks a source-address critical option (a comma-separated
// list of addresses and CIDR blocks) against the client's address, as OpenSSH
// does; a list that does not parse matches nothing.
func matchSourceAddress(list string, remote netip.Addr) error {
	if !remote.IsValid() {
		return errors.New("source-address is restricted and the client's address is unknown")
	}
	for _, f := range strings.Split(list, ",") {
		var p netip.Prefix
		var err error
		if strings.Contains(f, "/") {
			p, err = netip.ParsePrefix(f)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(f)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return fmt.Errorf("source-address %q does not parse: %v", printable(list), err)
		}
		if p.Contains(remote) {
			return nil
		}
	}
	return fmt.Errorf("source-address %q does not allow %s", printable(list), remote)
}

// certificateCallback authenticates a certificate: the server's checks, then
// CertificateCallback.
func (c *conn) certificateCallback(meta ssh.ConnMetadata, cert *ssh.Certificate) (*ssh.Permissions, error) {
	s := c.srv
	ip, _ := addrIP(c.remote)
	if r := s.checkCertificate(cert, ip, time.Now()); r != nil {
		ca := ""
		if cert.SignatureKey != nil {
			ca = ssh.FingerprintSHA256(cert.SignatureKey)
		}
		c.log.Info("certificate refused", "conn", c.id, "remote", addrString(c.remote), "key_id", printable(cert.KeyId),
			"serial", cert.Serial, "principals", cert.ValidPrincipals, "ca", ca, "reason", r.reason, "err", r.err)
		s.stats.reject(r.reason)
		return nil, r.err
	}
	if s.CertificateCallback == nil {
		return nil, errors.New("sshserve: no CertificateCallback configured")
	}
	p, err := s.CertificateCallback(c.ctx, c.infoFor(meta), cert)
	if err != nil {
		return nil, err
	}
	p.Key = cert
	return &ssh.Permissions{ExtraData: map[any]any{principalKey{}: &p}}, nil
}
