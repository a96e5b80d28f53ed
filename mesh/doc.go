// Package mesh is gitfleet's repository storage: the in-process Store that owns bare
// repositories on disk and runs git on them, and the storage sidecar (Server,
// Client, Supervisor) that serves a Store to its parent over loopback.
//
// Both Store and Client implement Repos, the one interface for repository storage,
// and both satisfy sshserve.GitBackend through ServeGit without importing it.
//
// # Typical usage
//
// In process:
//
//	store, err := mesh.OpenStore(ctx, mesh.StoreConfig{
//		Root:   filepath.Join(home, "shared", "data", "repositories"),
//		Logger: logger,
//	})
//	if err != nil { ... }
//	defer store.Close()
//	err = store.Create(ctx, "PROJ", "repo")
//	events, err := store.Subscribe(ctx) // ref changes, exact per transaction
//	// hand store to sshserve as its GitBackend:
//	err = store.ServeGit(ctx, "git-upload-pack", "PROJ/repo", []string{"GIT_PROTOCOL=version=2"},
//		stdin, stdout, stderr)
//
// # Layout and names
//
// Repositories live at <root>/<PROJECT>/<slug>.git. Project keys match
// ^[A-Z][A-Z0-9_]{0,127}$ and slugs ^[a-z0-9][a-z0-9._-]{0,127}$ without a ".git"
// suffix; input is upper-/lower-cased first (ASCII only, so Unicode look-alikes such
// as the Kelvin sign or a dotless i are refused rather than folded). Symbolic links
// planted inside the root are never followed. The store keeps its own scratch space
// in <root>/.mesh (a name no project key can take): repositories being created
// (built there, then renamed into place), being deleted (renamed there, then
// removed), ref-transaction spools and fetch key material (mode 0600, removed after
// each fetch). OpenStore empties it, so a crash leaves nothing half-made in view.
//
// New repositories are bare with HEAD -> refs/heads/main, receive.fsckObjects,
// uploadpack.allowFilter, uploadpack.allowAnySHA1InWant=false, and automatic gc off
// (see Events). Refs and RefsHash read loose refs and then packed-refs directly,
// without starting git.
//
// # Events
//
// Every repository has a hooks/reference-transaction script. For each git process
// that may change refs (receive-pack, fetch) the store creates a spool file and
// passes its path in GITFLEET_EVENTS; in the "committed" phase the POSIX-sh hook
// appends the transaction's "<old> <new> <ref>" lines and a "." terminator to it.
// When the process exits, while the store still holds the repository's write lock,
// the store reads the spool and publishes one EventRefsChanged per committed
// transaction, in commit order. This needs no helper program and no socket: the
// hook is four lines of sh using only cat and echo, runs under any test binary, and
// cannot block or fail a push when nobody listens; hooks of one git process run one
// after another, so appends never interleave, and transactions are never merged. A
// spool cut short (a killed process) yields EventGap for that repository.
//
// git 2.39 has two quirks the store corrects, both covered by tests: a deletion of
// a ref that is also in packed-refs first reports an internal packed-refs
// transaction of zero->zero lines (dropped), and a deletion without an expected old
// value, as fetch --prune makes, is reported as zero->zero (its old id is taken from
// the refs read when the fetch started, advanced through earlier transactions; exact,
// since every ref writer holds the write lock). Automatic gc is disabled in each
// repository because pack-refs' internal transactions would otherwise be reported
// as deletions and re-creations. Note that git 2.39 prunes ref by ref outside the
// --atomic transaction, so a mirror fetch yields one event per pruned ref and one for
// the atomic update.
//
// Subscribers each have a bounded queue (StoreConfig.EventBuffer, default 1024); a
// subscriber that falls behind loses its backlog and receives EventGap, and a push
// never waits for a subscriber.
//
// # Consistent reads
//
// Each repository has a reader/writer lock (writers first, acquisition abandoned
// when the context ends). upload-pack holds it for reading until its ref
// advertisement has been written: the store follows the pkt-line framing of git's
// output and releases at the first flush-pkt for protocol v0/v1, and, for v2 (first
// line "version 2"), at the flush-pkt ending the response to the first command,
// normally ls-refs. receive-pack and Fetch hold it for writing for their whole run,
// which takes in their own advertisement, so nothing can deadlock against itself;
// Refs and RefsHash read under it too. TestConsistentReads rewrites 3,000 refs with
// atomic pushes while ls-remote (v0 and v2), clones and Refs read: every snapshot
// through the store is entirely old or new, while for-each-ref run directly on the
// same repository sees mixed states. The price: a push delays new clones' ref
// advertisements (not running pack transfers) for the length of the push.
//
// # Streams
//
// ServeGit passes only a valid GIT_PROTOCOL (version=0|1|2) to git, runs it through
// internal/gitexec (sanitised environment, own process group killed when the context
// ends) and copies bytes without framing. After the advertisement, upload-pack's
// output is copied with io.Copy from an os.Pipe, which Go splices into a socket.
//
// # Performance
//
// BenchmarkClone clones the 40,000-object preset (16 MB packed, with bitmap)
// interleaving three transports in each iteration. Measured on the 2-core build
// machine while other jobs ran (load average 20 to 40, so single runs vary by
// +-30%):
//
//	go test -run '^$' -bench BenchmarkClone -benchtime 10x ./mesh/
//
// See the figures below under "Benchmark figures".
package mesh
