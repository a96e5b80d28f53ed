package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// DefaultSidecarPort is the sidecar's default port, Bitbucket's
// plugin.bitbucket-git.mesh.sidecar.default-port.
const DefaultSidecarPort = 7777

// ErrNotLoopback is returned by ListenAddr for an address outside 127.0.0.0/8 and ::1.
var ErrNotLoopback = errors.New("mesh: the sidecar listens on loopback addresses only")

// Listen binds 127.0.0.1:port. When, and only when, that port is already in use, it
// binds 127.0.0.1:0 instead and logs the fallback with both ports; the listener's
// Addr reports the port actually bound.
func Listen(ctx context.Context, port int, logger *slog.Logger) (net.Listener, error) {
	return ListenAddr(ctx, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), logger)
}

// ListenAddr is Listen for a host:port whose host must be a loopback IP address
// (127.0.0.0/8 or ::1); anything else, host names included, fails with
// ErrNotLoopback before anything is bound.
func ListenAddr(ctx context.Context, addr string, logger *slog.Logger) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("mesh: listen address %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() || ip.Zone() != "" {
		return nil, fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err == nil {
		return l, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("mesh: listen: %w", err)
	}
	l, err2 := lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, fmt.Errorf("mesh: port %s is in use and the fallback failed: %w", port, err2)
	}
	logger.Warn("mesh: sidecar port in use; listening on a free port instead",
		"configured", port, "port", l.Addr().(*net.TCPAddr).Port, "address", l.Addr().String())
	return l, nil
}
