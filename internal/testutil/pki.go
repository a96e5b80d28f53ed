package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA is a throwaway certificate authority for HTTPS tests on loopback. Trust it in
// Go clients through Pool, and in child processes through SSL_CERT_FILE=File.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte         // the CA certificate, PEM encoded
	Pool *x509.CertPool // a pool holding only this CA
	File string         // a file holding PEM, for SSL_CERT_FILE
}

var serialCounter atomic.Int64

func nextSerial() *big.Int {
	return big.NewInt(time.Now().UnixNano() + serialCounter.Add(1))
}

// NewCA creates a CA named name, valid from an hour ago for ten years.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"gitfleet tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	ca.Pool = x509.NewCertPool()
	ca.Pool.AddCert(cert)
	ca.File = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca.File, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

// LeafOptions describes a server certificate issued by CA.Issue.
type LeafOptions struct {
	// Names are the DNS names and IP addresses the certificate is valid for;
	// empty means 127.0.0.1 and localhost.
	Names []string
	// NotBefore and NotAfter bound its validity; zero means from an hour ago for a
	// year.
	NotBefore, NotAfter time.Time
}

// Leaf is an issued server certificate.
type Leaf struct {
	TLS      tls.Certificate // ready for tls.Config.Certificates
	CertPEM  []byte          // the leaf certificate, PEM encoded
	KeyPEM   []byte          // its private key, PEM encoded (PKCS #8)
	CertFile string          // CertPEM written to a file (0644)
	KeyFile  string          // KeyPEM written to a file (0600)
}

// Issue issues a server certificate signed by the CA.
func (ca *CA) Issue(t testing.TB, opts LeafOptions) *Leaf {
	t.Helper()
	names := opts.Names
	if len(names) == 0 {
		names = []string{"127.0.0.1", "localhost"}
	}
	notBefore, notAfter := opts.NotBefore, opts.NotAfter
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	if notAfter.IsZero() {
		notAfter = time.Now().Add(365 * 24 * time.Hour)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	l := &Leaf{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	l.TLS, err = tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	l.CertFile = filepath.Join(dir, "server.crt")
	l.KeyFile = filepath.Join(dir, "server.key")
	if err := os.WriteFile(l.CertFile, l.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(l.KeyFile, l.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return l
}

// StartTLSServer serves h over HTTPS with leaf on a free loopback port until the
// test ends. The returned server's URL is https://127.0.0.1:PORT.
func StartTLSServer(t testing.TB, leaf *Leaf, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS12}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}
