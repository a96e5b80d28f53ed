// Package gitfleet is an embeddable Go SDK for running a self-hosted Git hosting
// node in the style of Bitbucket Data Center. Programs import the packages below and
// assemble them; the example binaries under examples/ assemble a complete node.
//
// # Packages
//
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
//
// # How they compose
//
// A Git client connects over SSH, optionally through portfwd or HAProxy, which put
// a PROXY header carrying the client's address in front of the stream. sshserve
// completes the handshake, maps the key that authenticated to a principal, parses
// the git command, asks the embedding program whether the principal may read or
// write the repository, and hands the session to a GitBackend. The backend is a
// mesh.Repos: in the example server the sidecar's mesh.Client, which carries the
// stream over loopback to the sidecar's mesh.Store, where git upload-pack or
// receive-pack runs on the bare repository. Each committed ref transaction becomes
// an event; on a primary, mirror.Upstream turns those events into a change feed, and
// each mirror.Mirror follows the feed, fetches over SSH into its own mesh.Repos and
// serves clones through its own sshserve, asking the upstream whether each user may
// read. props feeds every constructor from bitbucket.properties and the
// environment.
package gitfleet
