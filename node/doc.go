// Package node assembles a complete gitfleet node, a primary or a mirror, from a
// home directory and a validated configuration: repository storage, Git over SSH,
// HTTP with a status page, and the mirroring role the configuration's
// application.mode calls for. It is what examples/server runs, so that a program
// that embeds gitfleet gets a full node without copying the example.
//
// # Typical usage
//
//	home := gitfleet.ResolveHome(*homeFlag, os.LookupEnv)
//	p, err := props.Load(ctx, home.Dir(), props.LoadOptions{})
//	...
//	cfg, problems := props.Check(p)
//	...
//	n := &node.Node{
//		Home: home, Config: cfg, Logger: logger,
//		PublicKeyCallback: users.Principal, // the program's own users and keys
//		Authorizer:        users.Authorize, // and who may read and write
//		Setup: func(ctx context.Context, repos mesh.Repos) error {
//			return repos.Create(ctx, "DEMO", "hello") // mesh.ErrExists on later starts
//		},
//	}
//	go func() { <-ctx.Done(); n.Shutdown(context.Background()) }()
//	if err := n.ListenAndServe(); !errors.Is(err, node.ErrServerClosed) {
//		return err
//	}
//
// examples/embed is such a program, in about a hundred lines.
//
// # What a node runs
//
// ListenAndServe starts, in the order GET /status reports: HTTP on
// server.address:server.port (HTTPS with server.ssl.*), answering /status at
// once (503 STARTING, naming the components awaited); the database (a bbolt file
// at Home.DBFile() unless Node.State is set); storage (Node.Repos as given, else a
// sidecar supervised with mesh.Supervisor when Node.Sidecar is set, else an
// in-process mesh.Store); Node.Setup; the role; and SSH on plugin.ssh.port. Then
// Ready is closed and /status answers 200 RUNNING. Shutdown drains SSH sessions
// and HTTP requests (503 STOPPING meanwhile) and stops everything in reverse
// order; a start that fails stops what it started and returns the error.
//
// On a primary (application.mode=default) the role is mirror.Upstream: its API is
// served under /rest/mirroring/1.0/ (approvals need Node.Admin), accepted mirrors'
// keys may read their projects over SSH, and mirrors' questions whether a user may
// read are answered with Node.PublicKeyCallback and Node.Authorizer. On a mirror
// (application.mode=mirror) the role is mirror.Mirror, set up from setup.* and
// plugin.mirroring.* with its key in Home.ConfigDir(): it serves
// /rest/mirroring/1.0/status, the doctor's endpoint for Diagnose, and clones whose
// reads the upstream allows. Either way the role's policy wraps the embedder's
// callbacks (see mirror.Upstream.Authorizer and mirror.Mirror.Authorizer), and
// every other HTTP request goes to Node.Handler. Node.GitBackend, when set,
// wraps the storage the SSH server runs git on, for the embedder's
// per-request policy (gitfleet.GitRequest.RequireSignedPush, say).
//
// # Health for load balancers
//
// Every node, primary and mirror, answers two health paths for any method
// (HAProxy's "option httpchk" sends OPTIONS unless told otherwise), in plain
// text and never cached:
//
//	GET /status/ready   200 "ready", or 503 "not ready: <reason>"  (PathReady)
//	GET /status/live    200 "live" while the process serves HTTP   (PathLive)
//
// A node is not ready while it starts ("starting: waiting for mesh, ssh") and
// once Shutdown or Close begins ("draining for shutdown": SSH sessions finish
// while HTTP still answers, so a load balancer stops sending new clients
// before the port closes). A primary is ready otherwise. A mirror is not ready
// either until the upstream has accepted it ("mirror is PENDING, ..."), while
// its sync is halted on a changed upstream host key, until its initial sync
// is done ("initial sync in progress: 3 of 10 repositories": every
// repository in scope matches the upstream's refs hash once, checked by the
// first reconcile after every start, so a node that missed events while it
// was stopped repairs them first), and while its change feed has failed for
// longer than plugin.mirroring.readiness.upstream-outage (60 s by default;
// "upstream unreachable for 1m5s (limit 1m0s): <last error>"). Node.Readiness
// returns the same answer to a program. An HAProxy or portfwd backend checks a
// node's SSH port through its HTTP port:
//
//	backend git
//	    option httpchk GET /status/ready
//	    http-check expect status 200
//	    server m1 10.0.0.1:7999 check port 8990 check-ssl ca-file /etc/gitfleet/ca.pem inter 2s fall 3 rise 2
//
// (check-ssl and ca-file because the node serves HTTPS, as every mirror
// does; see package portfwd).
//
// # HTTP limits
//
// The node's HTTP server serves unauthenticated requests (a mirror's
// registration, the health paths) in the same process as SSH, so it bounds what
// a client can hold: request headers must arrive within 10 s, a request body
// within Node.HTTPReadTimeout (30 s, set as the connection's read deadline when
// the request arrives and lifted once the body is read, so long-poll responses
// are not cut), a body declared over Node.MaxRequestBody (1 MiB) is refused with
// 413 before it is read and no handler can read more, and at most
// Node.MaxHTTPConnections (512) connections are open at once; further ones wait
// in the listen queue (TestSlowBodiesAreCut, TestRequestBodyLimit,
// TestHTTPConnectionCap).
//
// # SSH certificates and revoked keys
//
// plugin.ssh.revoked.keys names a file of revoked keys, certificate serials and
// key IDs (sshserve.LoadRevocationList), refused on primaries and mirrors.
// plugin.ssh.trusted.user.ca.keys names a file of certificate authorities
// (sshserve.LoadTrustedUserCAKeys): on a primary, their user certificates log
// in, mapped to principals by Node.CertificateCallback, which is then required
// (sshserve.PrincipalsCallback turns the program's lookup of users by name into
// one). A mirror asks the upstream about each key and accepts no certificates.
// A file that cannot be read or holds a bad line stops the start with an error
// naming the property, the file and the line; CheckSSHFiles reports the same
// for a -check-config flag.
//
// # Lifecycle
//
// Node follows net/http's Server: ListenAndServe blocks and returns
// ErrServerClosed after Shutdown or Close; Shutdown(ctx) drains and returns
// ctx.Err() when ctx ends first; Close stops at once and is safe to call twice.
// A node binds several listeners from its configuration, so it has no
// Serve(net.Listener).
//
// # The storage sidecar
//
// A program that wants storage in its own process, as Bitbucket's Mesh sidecar,
// sets Node.Sidecar to SidecarCommand(...) and calls RunSidecarCommand first
// thing in main when its first argument is SidecarArg: the node then re-executes
// the program as the sidecar and restarts it when it dies.
//
// # Operating systems
//
// A node builds everywhere and runs first on Linux. With Node.Sidecar set it
// needs mesh.Supervisor, which runs on Unix (Pdeathsig on Linux, a watched pipe
// on macOS and FreeBSD) and returns mesh.ErrSupervisorUnsupported on Windows,
// where a node keeps its storage in-process (Node.Repos or no Sidecar). What
// differs per system below that is in the mesh, portfwd and sshserve
// documentation.
package node
