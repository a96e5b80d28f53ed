package mirror

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Errors about HTTPS endpoints; test with errors.Is or errors.As (*CertError).
var (
	ErrNotHTTPS    = errors.New("mirror: URL must use https://")
	ErrUnreachable = errors.New("mirror: HTTPS endpoint unreachable")
)

// CertCheck names one property of a certificate that HTTPS verification checks.
type CertCheck string

// The certificate checks, in the order they are reported.
const (
	CertName  CertCheck = "name"  // the certificate names the host of the URL
	CertDates CertCheck = "dates" // now lies within the certificate's validity dates
	CertChain CertCheck = "chain" // the certificate chains to a trusted root
)

// CertError reports why an HTTPS endpoint's certificate was not trusted. Failed
// lists every check that failed, in the order name, dates, chain.
type CertError struct {
	URL    string
	Failed []CertCheck
	Detail []string // one sentence per failed check
	Roots  string   // which root store was used
	Err    error    // the TLS library's error
}

// Error implements error.
func (e *CertError) Error() string {
	return fmt.Sprintf("mirror: %s: certificate not trusted: %s", e.URL, strings.Join(e.Detail, "; "))
}

// Unwrap returns the TLS library's error.
func (e *CertError) Unwrap() error { return e.Err }

// Has reports whether check failed.
func (e *CertError) Has(check CertCheck) bool {
	for _, c := range e.Failed {
		if c == check {
			return true
		}
	}
	return false
}

// rootsName describes the root store in use, for messages.
func rootsName(roots *x509.CertPool) string {
	if roots != nil {
		return "the configured root CA pool"
	}
	return "the system root store (SSL_CERT_FILE or SSL_CERT_DIR override it; otherwise add the CA to /etc/ssl/certs and run update-ca-certificates)"
}

// newHTTPClient returns a client that verifies certificates against roots (nil:
// the system roots, which honour SSL_CERT_FILE) at the time now gives.
func newHTTPClient(roots *x509.CertPool, now func() time.Time, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, Time: now},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// CheckHTTPS requests rawURL over HTTPS and reports whether it answered with a
// certificate that roots (nil: the system roots, honouring SSL_CERT_FILE) trust at
// the time now gives (nil: time.Now): name, dates and chain. Any HTTP status
// counts as an answer. It returns ErrNotHTTPS for another scheme, a *CertError
// naming each failed check, or an error wrapping ErrUnreachable.
func CheckHTTPS(ctx context.Context, rawURL string, roots *x509.CertPool, now func() time.Time) error {
	u, err := parseHTTPSURL(rawURL)
	if err != nil {
		return err
	}
	if now == nil {
		now = time.Now
	}
	c := newHTTPClient(roots, now, 0)
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, rawURL, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return classifyTLSError(rawURL, u.Hostname(), roots, now(), err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	return nil
}

// parseHTTPSURL parses rawURL and requires https:// with a host.
func parseHTTPSURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrNotHTTPS, rawURL, err)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%w: %q uses %q", ErrNotHTTPS, rawURL, u.Scheme+"://")
	}
	if u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: %q has no host or carries credentials", ErrNotHTTPS, rawURL)
	}
	return u, nil
}

// classifyTLSError turns a failed request into a *CertError when the certificate
// was the cause, and into an ErrUnreachable error otherwise.
func classifyTLSError(rawURL, host string, roots *x509.CertPool, now time.Time, err error) error {
	var cve *tls.CertificateVerificationError
	if !errors.As(err, &cve) || len(cve.UnverifiedCertificates) == 0 {
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, rawURL, err)
	}
	ce := &CertError{URL: rawURL, Roots: rootsName(roots), Err: cve}
	ce.Failed, ce.Detail = diagnoseChain(cve.UnverifiedCertificates, host, roots, now)
	if len(ce.Failed) == 0 {
		// Verification failed for a reason the separate checks do not show (for
		// example a key usage); report it as a chain failure with the library's words.
		ce.Failed = []CertCheck{CertChain}
		ce.Detail = []string{cve.Err.Error()}
	}
	return ce
}

// diagnoseChain checks the peer's certificates one property at a time.
func diagnoseChain(certs []*x509.Certificate, host string, roots *x509.CertPool, now time.Time) ([]CertCheck, []string) {
	leaf := certs[0]
	var failed []CertCheck
	var detail []string
	if err := leaf.VerifyHostname(host); err != nil {
		names := append([]string{}, leaf.DNSNames...)
		for _, ip := range leaf.IPAddresses {
			names = append(names, ip.String())
		}
		if len(names) == 0 {
			names = []string{"no subject alternative names"}
		}
		failed = append(failed, CertName)
		detail = append(detail, fmt.Sprintf("the certificate is not valid for host %q (it names %s)", host, strings.Join(names, ", ")))
	}
	for _, c := range certs {
		switch {
		case now.After(c.NotAfter):
			failed = append(failed, CertDates)
			detail = append(detail, fmt.Sprintf("the certificate %q expired on %s (now %s)", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
		case now.Before(c.NotBefore):
			failed = append(failed, CertDates)
			detail = append(detail, fmt.Sprintf("the certificate %q is not valid before %s (now %s): check both clocks", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
		default:
			continue
		}
		break
	}
	pool := roots
	if pool == nil {
		var err error
		if pool, err = x509.SystemCertPool(); err != nil {
			pool = x509.NewCertPool()
		}
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	// Check the chain now; an expiry is reported by the dates check alone.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now}); err != nil && !isExpiry(err) {
		var ua x509.UnknownAuthorityError
		msg := err.Error()
		if errors.As(err, &ua) {
			issuer := leaf.Issuer.CommonName
			msg = fmt.Sprintf("the certificate is signed by %q, which is not trusted by %s", issuer, rootsName(roots))
		}
		failed = append(failed, CertChain)
		detail = append(detail, msg)
	}
	return failed, detail
}

// isExpiry reports whether err is only about validity dates.
func isExpiry(err error) bool {
	var ci x509.CertificateInvalidError
	return errors.As(err, &ci) && ci.Reason == x509.Expired
}
