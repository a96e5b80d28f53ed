package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/gitexec"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/sshserve"
	bolt "go.etcd.io/bbolt"
)

// ErrServerClosed is returned by ListenAndServe after Shutdown or Close.
var ErrServerClosed = errors.New("node: Node closed")

// DefaultDrainTimeout bounds the drain of SSH sessions and HTTP requests when a
// node stops without a deadline of its own (Close, or a Shutdown whose context
// has none).
const DefaultDrainTimeout = 60 * time.Second

// State is where a node keeps what must survive a restart: the upstream role's
// state on a primary, the mirror role's on a mirror. mirror.NewBoltState and
// mirror.NewMemoryState implement it.
type State interface {
	mirror.MirrorState
	mirror.UpstreamState
}

// Node is one gitfleet node, a primary (application.mode=default) or a mirror
// (application.mode=mirror), assembled from a home directory and a validated
// configuration: repository storage, Git over SSH on plugin.ssh.port, HTTP on
// server.port (HTTPS with server.ssl.*) and the mirroring role its mode calls for.
//
// Set the fields, then call ListenAndServe. A Node serves once; its fields must
// not change after ListenAndServe is called.
type Node struct {
	// Home is the node's home directory. Required. The node creates its
	// directories and keeps host keys (and, on a mirror, the mirror key and the
	// doctor's token) in Home.ConfigDir().
	Home gitfleet.Home
	// Config is the node's configuration, as props.Check returns it. Required.
	Config *props.Config
	// Logger receives the node's logs; nil means discard.
	Logger *slog.Logger

	// Repos, when not nil, is the node's repository storage, used as is; the
	// caller opens and closes it.
	Repos mesh.Repos
	// Sidecar, when Repos is nil and Sidecar is not, starts the storage sidecar:
	// the node supervises the processes it returns (a fresh command each time;
	// see mesh.Supervisor) and reaches them through a mesh.Client, so that only
	// the sidecar touches repository files. SidecarCommand makes one that
	// re-executes the running program. When both are nil, the node opens an
	// in-process mesh.Store at Home.RepositoriesDir().
	Sidecar func() *exec.Cmd

	// State, when not nil, keeps the mirroring role's state; the caller opens and
	// closes it. When nil, the node opens a bbolt database at Home.DBFile().
	State State

	// PublicKeyCallback maps an SSH key to a principal: the embedder's users and
	// access keys. On a primary, accepted mirrors' keys are recognised before
	// it; on a mirror, any key is taken (the upstream decides each read) and it
	// only names keys it knows. nil knows no key.
	PublicKeyCallback sshserve.PublicKeyCallback
	// CertificateCallback maps an SSH user certificate, signed by an authority
	// of plugin.ssh.trusted.user.ca.keys and verified by the server, to a
	// principal (sshserve.PrincipalsCallback builds one from a lookup of users
	// by name). It is required on a primary when that property is set: the
	// node does not start without it. A mirror accepts no certificates (it
	// asks the upstream about each key) and ignores the property.
	CertificateCallback sshserve.CertificateCallback
	// Authorizer decides what a principal may read and write. On a primary it
	// decides every request but accepted mirrors' reads, which their grant
	// decides; on a mirror it may refuse what the upstream allowed. On a primary
	// nil refuses everything but mirrors; on a mirror nil adds nothing.
	Authorizer sshserve.Authorizer
	// Admin reports whether an HTTP request comes from an administrator of a
	// primary, who may approve and reject mirrors. nil admits nobody.
	Admin func(r *http.Request) bool
	// GitBackend, when not nil, wraps the storage the SSH server runs git
	// services on: the place for the embedder's per-request policy, such as
	// setting gitfleet.GitRequest.RequireSignedPush from its own
	// per-repository setting. The backend it returns must call next to run
	// the service. nil serves the storage as it is.
	GitBackend func(next sshserve.GitBackend) sshserve.GitBackend

	// Handler serves every HTTP request the node does not serve itself (see
	// the package documentation for the node's own paths): the embedder's API.
	// nil answers 404.
	Handler http.Handler

	// Setup, when not nil, runs once storage is up and before SSH and Handler
	// serve: the place to reconcile the embedder's records with the stored
	// repositories, or to create repositories. An error stops the start.
	Setup func(ctx context.Context, repos mesh.Repos) error

	// DrainTimeout bounds the drain at Close, and at a Shutdown whose context
	// has no deadline; zero means DefaultDrainTimeout.
	DrainTimeout time.Duration

	// HTTPReadTimeout bounds reading a whole HTTP request, headers and body,
	// so that a client dripping a body cannot hold a connection; zero means
	// DefaultHTTPReadTimeout.
	HTTPReadTimeout time.Duration
	// MaxRequestBody is the largest HTTP request body the node accepts, in
	// bytes: a larger one is refused with 413 before it is read. Zero means
	// DefaultMaxRequestBody; negative means no limit.
	MaxRequestBody int64
	// MaxHTTPConnections bounds the HTTP connections open at once; past it,
	// new connections wait in the listen queue until one closes. Zero means
	// DefaultMaxHTTPConnections; negative means no bound.
	MaxHTTPConnections int

	httpConns atomic.Int64 // HTTP connections open now

	mu       sync.Mutex
	started  bool
	closed   bool
	ctx      context.Context // the node's life; cancelled when it stops
	cancel   context.CancelFunc
	ready    chan struct{}
	done     chan struct{} // closed when ListenAndServe has torn everything down
	stopping chan struct{} // closed when Shutdown or Close begins
	drainCtx context.Context

	log      *slog.Logger
	status   *status
	repos    mesh.Repos
	sup      *mesh.Supervisor
	upstream *mirror.Upstream
	mir      *mirror.Mirror
	ssh      *sshserve.Server
}

func (n *Node) init() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ready == nil {
		n.ready = make(chan struct{})
		n.done = make(chan struct{})
		n.stopping = make(chan struct{})
		n.ctx, n.cancel = context.WithCancel(context.Background())
		n.log = n.Logger
		if n.log == nil {
			n.log = slog.New(slog.DiscardHandler)
		}
		n.status = newStatus(ComponentDatabase, ComponentMesh, ComponentSSH)
	}
}

// Ready returns a channel that is closed once the node serves everything: SSH,
// HTTP with Handler, and its mirroring role.
func (n *Node) Ready() <-chan struct{} {
	n.init()
	return n.ready
}

// Storage returns the node's repository storage, or nil before it has started.
func (n *Node) Storage() mesh.Repos {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.repos
}

// StorageState reports the storage sidecar's state; ok is false when the node
// runs no sidecar.
func (n *Node) StorageState() (st mesh.SupervisorState, ok bool) {
	n.mu.Lock()
	sup := n.sup
	n.mu.Unlock()
	if sup == nil {
		return mesh.SupervisorState{}, false
	}
	return sup.State(), true
}

// Mirror returns the mirror role of a mirror node once it has started, else nil.
func (n *Node) Mirror() *mirror.Mirror {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mir
}

// Upstream returns the upstream role of a primary once it has started, else
// nil. Its ServeHTTP is the mirroring API under PathMirroring, which pages
// can call in-process (see webadmin.Call).
func (n *Node) Upstream() *mirror.Upstream {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.upstream
}

// ListenAndServe starts the node and serves until Shutdown or Close, then
// returns ErrServerClosed; it returns at once with the error when any part
// cannot start (everything started so far is stopped again). The start order
// is the one GET /status reports: HTTP (answering /status at once), the
// database, storage, Setup, then the role and SSH.
func (n *Node) ListenAndServe() (err error) {
	n.init()
	n.mu.Lock()
	switch {
	case n.closed:
		n.mu.Unlock()
		return ErrServerClosed
	case n.started:
		n.mu.Unlock()
		return errors.New("node: ListenAndServe called twice")
	}
	n.started = true
	n.mu.Unlock()
	defer close(n.done)
	if n.Config == nil || n.Home == "" {
		return errors.New("node: Node.Home and Node.Config are required")
	}
	var undo []func()
	defer func() {
		n.status.stop()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		n.cancel()
	}()
	ctx := n.ctx
	for _, d := range []string{n.Home.RepositoriesDir(), n.Home.ConfigDir()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("node: create %s: %w", d, err)
		}
	}

	h := &handler{node: n}
	h.set(n.earlyRoutes())
	stopHTTP, err := n.startHTTP(ctx, h)
	if err != nil {
		return err
	}
	undo = append(undo, stopHTTP)

	if _, err := gitexec.CheckVersion(ctx); err != nil {
		return err
	}
	state := n.State
	if state == nil {
		db, err := OpenDB(n.Home)
		if err != nil {
			return err
		}
		undo = append(undo, func() { db.Close() })
		state = mirror.NewBoltState(db)
	}
	n.status.ready(ComponentDatabase)

	repos, stopStorage, err := n.startStorage(ctx)
	if err != nil {
		return err
	}
	undo = append(undo, stopStorage)
	n.mu.Lock()
	n.repos = repos
	n.mu.Unlock()
	n.status.ready(ComponentMesh)
	if n.Setup != nil {
		if err := n.Setup(ctx, repos); err != nil {
			return err
		}
	}

	hostKeys, err := sshserve.LoadOrCreateHostKeys(n.Home.ConfigDir())
	if err != nil {
		return err
	}
	var backend sshserve.GitBackend = repos
	if n.GitBackend != nil {
		backend = n.GitBackend(repos)
	}
	srv := NewSSHServer(n.Config, hostKeys, backend, n.log)
	srv.PublicKeyCallback, srv.Authorizer = n.PublicKeyCallback, n.Authorizer
	if err := n.applySSHTrust(srv); err != nil {
		return err
	}

	var runRole func() <-chan error
	if n.Config.Mode == props.ModeMirror {
		run, stopRole, err := n.startMirror(ctx, h, state, repos, srv)
		if err != nil {
			return err
		}
		undo = append(undo, stopRole)
		runRole = run
	} else {
		stopRole, err := n.startPrimary(h, state, repos, srv, hostKeys)
		if err != nil {
			return err
		}
		undo = append(undo, stopRole)
	}

	stopSSH, err := n.startSSH(ctx, srv)
	if err != nil {
		return err
	}
	undo = append(undo, stopSSH)
	n.status.ready(ComponentSSH)
	var roleDone <-chan error
	if runRole != nil {
		roleDone = runRole()
	}
	close(n.ready)
	n.log.Info("node running", "mode", n.Config.Mode, "http", n.Config.PublicBaseURL(), "ssh", n.Config.SSHBaseURL())

	select {
	case <-n.stopping:
		return ErrServerClosed
	case err := <-roleDone:
		if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, mirror.ErrMirrorClosed) {
			return err
		}
		<-n.stopping
		return ErrServerClosed
	}
}

// drainContext returns the context the node drains under: Shutdown's, else one
// bounded by DrainTimeout.
func (n *Node) drainContext() (context.Context, context.CancelFunc) {
	n.mu.Lock()
	ctx := n.drainCtx
	n.mu.Unlock()
	if ctx != nil {
		if _, ok := ctx.Deadline(); ok {
			return ctx, func() {}
		}
	} else {
		ctx = context.Background()
	}
	d := n.DrainTimeout
	if d <= 0 {
		d = DefaultDrainTimeout
	}
	return context.WithTimeout(ctx, d)
}

// Shutdown stops the node gracefully: /status answers STOPPING, SSH sessions and
// HTTP requests drain (until ctx ends), then the mirroring role, storage and the
// database stop. It waits for ListenAndServe to return and returns ctx.Err()
// when ctx ends first.
func (n *Node) Shutdown(ctx context.Context) error {
	n.init()
	n.beginStop(ctx)
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		n.cancel()
		return ctx.Err()
	}
}

// Close stops the node at once: running sessions and requests are cut, then
// everything stops as with Shutdown. It waits for ListenAndServe to return and
// is safe to call more than once.
func (n *Node) Close() error {
	n.init()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.beginStop(ctx)
	n.cancel()
	<-n.done
	return nil
}

func (n *Node) beginStop(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	n.closed = true
	n.drainCtx = ctx
	close(n.stopping)
	if !n.started {
		n.started = true
		close(n.done)
	}
}

// OpenDB opens (creating) the bbolt database at home.DBFile(), waiting at most
// five seconds for another process to let go of it.
func OpenDB(home gitfleet.Home) (*bolt.DB, error) {
	path := home.DBFile()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w (is another server running with this home?)", path, err)
	}
	return db, nil
}
