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
// with hostKeys and backend. Its callbacks are left for the caller to set.
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
