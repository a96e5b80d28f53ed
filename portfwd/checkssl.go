package portfwd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// This file holds health checks over TLS: the server options check-ssl,
// verify, ca-file and check-sni, so that an HTTPS health endpoint can be
// checked ("option httpchk" against a node that serves HTTPS).

// checkTLSConfig returns the TLS configuration of s's health checks, or nil
// when s has no CheckSSL.
func checkTLSConfig(s *Server) (*tls.Config, error) {
	if !s.CheckSSL {
		return nil, nil
	}
	if s.VerifyNone {
		return &tls.Config{InsecureSkipVerify: true, ServerName: s.CheckSNI}, nil
	}
	if s.CAFile == "" {
		return nil, errors.New("check-ssl verifies the server's certificate: set ca-file, or 'verify none'")
	}
	pool, err := loadCAFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	if s.CheckSNI != "" {
		return &tls.Config{RootCAs: pool, ServerName: s.CheckSNI}, nil
	}
	// Without a name to check, as in HAProxy, only the chain is verified.
	return &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
			return err
		},
	}, nil
}

// loadCAFile reads a PEM file of certificate authorities.
func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open the ca-file '%s': %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca-file '%s' holds no PEM certificate", path)
	}
	return pool, nil
}
