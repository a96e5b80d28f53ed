// Package gitfleet is an embeddable Go SDK for running a self-hosted Git hosting
// node in the style of Bitbucket Data Center. Programs import the packages below and
// assemble them; package node assembles a whole node, and the example binaries
// under examples/ run it.
//
// # Packages
//
//   - This package, the ground floor, holds the vocabulary every other package
//     shares and imports no other gitfleet package: repository names (RepoName,
//     ParseRepoPath, NormalizeProjectKey, NormalizeSlug, Slugify), git services and
//     the parsed request a transport hands to storage (Service, GitRequest,
//     ParseProtocol), the key policy (KeyPolicy, SignatureAlgorithms), clone URLs
//     (SSHBaseURL, CloneURL), the home directory's layout (Home, ResolveHome), the
//     PROXY protocol policy (ProxyPolicy), the one retry policy (Backoff) and the
//     sentinels ErrInvalidName, ErrNotFound and ErrKeyRejected. A rule that two
//     packages need lives here once.
//   - [github.com/gitfleet/gitfleet/props] loads <home>/shared/bitbucket.properties
//     with exact Java semantics, applies environment overrides with Spring Boot's
//     relaxed binding, and yields a typed, validated configuration.
//   - [github.com/gitfleet/gitfleet/mesh] stores repositories (Store), runs git on
//     them, reports every ref change, and serves a Store from a supervised sidecar
//     process on a loopback port (Server, Client, Supervisor).
//   - [github.com/gitfleet/gitfleet/sshserve] serves Git over SSH: host keys,
//     public-key authentication to a Principal, read/write authorization, limits,
//     timeouts and the PROXY protocol.
//   - [github.com/gitfleet/gitfleet/mirror] implements smart mirroring: the upstream
//     API a primary mounts, the mirror's registration and sync engine, auth
//     delegation, and a doctor for setup errors.
//   - [github.com/gitfleet/gitfleet/portfwd] is a TCP forwarder that reads HAProxy's
//     configuration and passes client addresses on with the PROXY protocol.
//   - [github.com/gitfleet/gitfleet/node] assembles a primary or a mirror from a
//     home and a props.Config: storage, SSH, HTTP and the mirroring role, around the
//     embedder's own users and permissions.
//
// Packages depend downwards only: this package at the bottom; sshserve, portfwd,
// mesh and props on it alone; mirror on mesh, sshserve and props; node on all;
// examples on anything.
//
// # How they compose
//
// A Git client connects over SSH, optionally through portfwd or HAProxy, which put
// a PROXY header carrying the client's address in front of the stream. sshserve
// completes the handshake, maps the key that authenticated to a principal, parses
// the git command once into a GitRequest, asks the embedding program whether the
// principal may read or write the repository, and hands the request to a
// GitBackend, which answers a missing repository with ErrNotFound. The backend is a
// mesh.Repos: in the example server the sidecar's mesh.Client, which carries the
// stream over loopback to the sidecar's mesh.Store (two requests per clone, on a
// reused connection), where git upload-pack or receive-pack runs on the bare
// repository. Each committed ref transaction becomes an event; on a primary,
// mirror.Upstream turns those events into a change feed, and each mirror.Mirror
// follows the feed, fetches over SSH into its own mesh.Repos and serves clones
// through its own sshserve, asking the upstream whether each user may read. props
// feeds every constructor from bitbucket.properties and the environment.
//
// # Conventions every package keeps
//
// Services follow net/http's lifecycle: configuration in exported fields whose
// zero values are documented; Serve(l) (or ListenAndServe) blocking until
// Shutdown(ctx), which drains and returns ctx.Err() when ctx ends, or Close, which
// is safe to call twice; then ErrServerClosed. sshserve.Server and mesh.Server
// are exactly that. Where a type has no single listener it says why and keeps the
// rest: portfwd.Forwarder serves one listener per bind line
// (Serve(ls ...net.Listener)); mesh.Supervisor has a child process instead of a
// listener (Start); mirror.Mirror checks its setup in Open before it serves
// (Open, then Run); node.Node binds all of a node's listeners itself
// (ListenAndServe only).
//
// Policies compose instead of replacing each other: mirror.Upstream and
// mirror.Mirror wrap the sshserve callbacks they are given
// (func(next sshserve.Authorizer) sshserve.Authorizer), so an embedder's own
// users and permissions stay in force. State that must survive a restart sits
// behind small interfaces (mirror.MirrorState, mirror.UpstreamState), with bbolt
// as the default implementation and an in-memory one for tests. Constructors write
// no files: host keys (sshserve.LoadOrCreateHostKeys) and the mirror key
// (mirror.LoadOrCreateKey) are created by explicit calls. Library code logs
// through an injected *slog.Logger and never exits the process.
//
// # Operating systems
//
// Every package builds and vets for Linux, macOS, Windows and FreeBSD (amd64
// and arm64), and this package behaves the same on all of them. The servers run
// first on Linux, where portfwd, mesh and sshserve have their fast paths; each
// package's documentation says what differs elsewhere.
package gitfleet
