package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// NewSSHServer returns an SSH server configured from the properties
// (plugin.ssh.disabled.*, plugin.ssh.proxy-protocol and its trusted networks),
// with hostKeys and backend. Its callbacks are left for the caller to set, and
// so are the certificate authorities and the revocation list, which come from
// files (LoadSSHTrust).
func NewSSHServer(cfg *props.Config, hostKeys []ssh.Signer, backend sshserve.GitBackend, logger *slog.Logger) *sshserve.Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &sshserve.Server{
		HostKeys:             hostKeys,
		Backend:              backend,
		Logger:               logger.With("component", "ssh"),
		DisabledCiphers:      cfg.SSH.DisabledCiphers,
		DisabledKeyExchanges: cfg.SSH.DisabledKeyExchanges,
		DisabledMACs:         cfg.SSH.DisabledMACs,
		ProxyProtocol:        cfg.SSH.ProxyProtocol,
		ProxyTrusted:         cfg.SSH.ProxyTrusted,
	}
}

// applySSHTrust gives srv the certificate authorities and the revocation list
// the properties name. Revoked keys are refused on primaries and mirrors
// alike; certificates are accepted on a primary only.
func (n *Node) applySSHTrust(srv *sshserve.Server) error {
	trust, err := LoadSSHTrust(n.Config)
	if err != nil {
		return fmt.Errorf("SSH: %w", err)
	}
	srv.Revoked = trust.Revoked
	if len(trust.TrustedUserCAKeys) == 0 {
		return nil
	}
	if n.Config.Mode == props.ModeMirror {
		n.log.Warn("a mirror accepts no SSH certificates; the property is ignored", "key", props.KeySSHTrustedUserCAKeys)
		return nil
	}
	if n.CertificateCallback == nil {
		return fmt.Errorf("SSH: %s is set but the node has no CertificateCallback to map certificates to users", props.KeySSHTrustedUserCAKeys)
	}
	srv.TrustedUserCAKeys, srv.CertificateCallback = trust.TrustedUserCAKeys, n.CertificateCallback
	n.log.Info("SSH certificates accepted", "authorities", len(trust.TrustedUserCAKeys))
	return nil
}

// startSSH listens on server.address:plugin.ssh.port and serves srv in the
// background; stop drains it.
func (n *Node) startSSH(ctx context.Context, srv *sshserve.Server) (stop func(), err error) {
	cfg := n.Config
	addr := net.JoinHostPort(cfg.Server.Address, strconv.Itoa(cfg.SSH.Port))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("SSH: listen on %s (plugin.ssh.port): %w", addr, err)
	}
	n.log.Info("SSH listening", "addr", ln.Addr().String(), "proxyProtocol", cfg.SSH.ProxyProtocol.String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, sshserve.ErrServerClosed) {
			n.log.Error("SSH server failed", "err", err)
		}
	}()
	return func() {
		n.log.Info("shutting down: draining SSH sessions and HTTP requests")
		dctx, cancel := n.drainContext()
		defer cancel()
		if err := srv.Shutdown(dctx); err != nil {
			n.log.Warn("SSH drain incomplete", "err", err)
			srv.Close()
		}
		<-done
	}, nil
}

// publicKeys returns the public halves of signers.
func publicKeys(signers []ssh.Signer) []ssh.PublicKey {
	out := make([]ssh.PublicKey, len(signers))
	for i, s := range signers {
		out[i] = s.PublicKey()
	}
	return out
}

// SSHTrust is what the SSH server trusts and refuses beyond the keys its
// PublicKeyCallback knows, read from the files the properties name.
type SSHTrust struct {
	// TrustedUserCAKeys are the certificate authorities of
	// plugin.ssh.trusted.user.ca.keys; nil when it is not set.
	TrustedUserCAKeys []ssh.PublicKey
	// Revoked is the revocation list of plugin.ssh.revoked.keys; nil when it is
	// not set.
	Revoked *sshserve.RevocationList
}

// LoadSSHTrust reads the files named by plugin.ssh.trusted.user.ca.keys
// (sshserve.LoadTrustedUserCAKeys) and plugin.ssh.revoked.keys
// (sshserve.LoadRevocationList); either may be unset. An error names the
// property, the file and the line.
func LoadSSHTrust(cfg *props.Config) (SSHTrust, error) {
	var t SSHTrust
	var err error
	if p := cfg.SSH.TrustedUserCAKeys; p != "" {
		if t.TrustedUserCAKeys, err = sshserve.LoadTrustedUserCAKeys(p); err != nil {
			return SSHTrust{}, fmt.Errorf("%s: %w", props.KeySSHTrustedUserCAKeys, err)
		}
	}
	if p := cfg.SSH.RevokedKeys; p != "" {
		if t.Revoked, err = sshserve.LoadRevocationList(p); err != nil {
			return SSHTrust{}, fmt.Errorf("%s: %w", props.KeySSHRevokedKeys, err)
		}
	}
	return t, nil
}

// CheckSSHFiles reads the files LoadSSHTrust reads and returns their problems
// (a file that cannot be read, a bad line with its file and line number, a
// certificate authority file without a key), each with its property and
// source, for a -check-config flag to print beside props.Check's. A nil cfg
// (props.Check could not build one) has none.
func CheckSSHFiles(cfg *props.Config) props.Problems {
	if cfg == nil {
		return nil
	}
	var ps props.Problems
	add := func(sev props.Severity, key, msg, fix string) {
		ps = append(ps, props.Problem{Severity: sev, Key: key, Source: cfg.Source(key), Message: msg, Fix: fix})
	}
	if p := cfg.SSH.TrustedUserCAKeys; p != "" {
		keys, err := sshserve.LoadTrustedUserCAKeys(p)
		switch {
		case err != nil:
			add(props.Error, props.KeySSHTrustedUserCAKeys, err.Error(),
				"list one certificate authority public key per line (the .pub of ssh-keygen -t ed25519 -f ca)")
		case len(keys) == 0:
			add(props.Warning, props.KeySSHTrustedUserCAKeys, "file "+p+" lists no certificate authority: every certificate is refused",
				"add the authority's public key, or unset "+props.KeySSHTrustedUserCAKeys)
		}
	}
	if p := cfg.SSH.RevokedKeys; p != "" {
		if _, err := sshserve.LoadRevocationList(p); err != nil {
			add(props.Error, props.KeySSHRevokedKeys, err.Error(),
				`list one public key, "serial: N[-M]" or "id: KEYID" per line`)
		}
	}
	return ps
}
