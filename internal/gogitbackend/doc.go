// Package gogitbackend serves Git from bare repositories with go-git, without
// the git program. It is the backend sshservetest falls back to where git is
// not installed, and it is for test fixtures only, never for a server: go-git's
// server side reads whole histories into memory and writes every pushed object
// loose, so it is slow and memory-hungry on large repositories.
//
// Backend is an sshserve.GitBackend over the directory Root, laid out as
// mesh.Store lays it out (Root/PROJECT/slug.git). It uses go-git's server
// (plumbing/transport/server) for the ref advertisement, the pack it sends and
// the ref updates it applies, and handles the conversation around them itself:
//
//   - git-upload-pack (clone, fetch, ls-remote) speaks protocol v0 and v1. A
//     client that asks for v2 gets v0, which every git client accepts. The
//     capabilities are go-git's: ofs-delta, symref and agent only. There is
//     no multi_ack (the negotiation is git's plain one: ACK for the first
//     common commit, NAK otherwise), no side-band (so no progress), no
//     thin-pack, no include-tag, no shallow or deepen (refused), no filter
//     (partial clone), and no protocol v2 commands (ls-refs, fetch,
//     object-info). Annotated tags are advertised with their peeled ids.
//   - git-receive-pack (push) advertises report-status, delete-refs and
//     ofs-delta. Thin packs are accepted. Each ref moves only from the old id
//     the client sent (a stale one is reported as "stale info"), and pushes
//     to one repository are serialised. There are no hooks, no ref-change
//     events, no atomic pushes (git push --atomic is refused by the client),
//     no push options, no report-status-v2 and no fast-forward checks beyond
//     the client's own.
//   - git-upload-archive is refused: ServeGit writes why on stderr and returns
//     an ExitError wrapping ErrUnsupported.
//
// ServeGit keeps the sshserve.GitBackend contract: a missing repository is an
// error wrapping gitfleet.ErrNotFound returned before anything is written; a
// failure is an *ExitError (exit status 128, as git's own); and it returns when
// the service is done, without waiting for the client to close stdin.
package gogitbackend
