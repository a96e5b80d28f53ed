package node

import (
	"context"
	"errors"
	"net/http"

	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// The paths a node serves itself, before Node.Handler.
const (
	// PathStatus answers the node's start-up state (see StateRunning).
	PathStatus = "/status"
	// PathMirroring is the prefix of the mirroring API: on a primary the
	// upstream's whole API, on a mirror its status page and the doctor's
	// endpoint.
	PathMirroring = "/rest/mirroring/1.0/"
)

// startPrimary gives the node its primary role: the upstream side of mirroring,
// whose API is mounted under PathMirroring and whose grants let accepted
// mirrors read over SSH, composed with the embedder's callbacks.
func (n *Node) startPrimary(h *handler, state State, repos mesh.Repos, srv *sshserve.Server, hostKeys []ssh.Signer) (stop func(), err error) {
	admin := n.Admin
	if admin == nil {
		admin = func(*http.Request) bool { return false }
	}
	up, err := mirror.NewUpstream(mirror.UpstreamConfig{
		State:       state,
		Admin:       admin,
		SSHBaseURL:  n.Config.SSHBaseURL(),
		SSHHostKeys: publicKeys(hostKeys),
		Repos:       repos,
		ReadAccess:  n.readAccess,
		Logger:      n.log.With("component", "mirroring"),
	})
	if err != nil {
		return nil, err
	}
	srv.PublicKeyCallback = up.PublicKeyCallback(srv.PublicKeyCallback)
	srv.Authorizer = up.Authorizer(srv.Authorizer)
	mux := http.NewServeMux()
	mux.Handle(PathMirroring, up)
	h.set(n.routes(mux))
	n.mu.Lock()
	n.upstream = up
	n.mu.Unlock()
	return func() { up.Close() }, nil
}

// readAccess answers a mirror's question whether the holder of key may read
// project/slug with the embedder's own callbacks: the key's principal, then the
// Authorizer's answer for a read.
func (n *Node) readAccess(ctx context.Context, key ssh.PublicKey, project, slug string) (string, bool, error) {
	if n.PublicKeyCallback == nil || n.Authorizer == nil {
		return "", false, nil
	}
	p, err := n.PublicKeyCallback(ctx, sshserve.ConnInfo{}, key)
	if err != nil {
		return "", false, nil
	}
	p.Key = key
	err = n.Authorizer(ctx, sshserve.ConnInfo{}, p, project, slug, sshserve.AccessRead)
	switch {
	case err == nil:
		return p.Name, true, nil
	case errors.Is(err, sshserve.ErrDenied), errors.Is(err, sshserve.ErrNotFound):
		return p.Name, false, nil
	}
	return p.Name, false, err
}
