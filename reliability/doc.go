// Package reliability holds gitfleet's cross-package reliability tests. It has
// no code of its own: its tests build the example binaries (examples/server
// and examples/portfwd) and drive them with the real git, OpenSSH and
// HAProxy-configured forwarders over loopback, while faults are injected.
//
// The tests are plain Go tests, run by `go test ./...` and so by CI:
//
//   - TestSoak: concurrent clones and pushes through portfwd (PROXY v2) into
//     the server, with random client disconnects (the client's git and ssh are
//     killed mid-operation). Afterwards: no operation that was not cut failed,
//     the server logged no error, neither process holds more file descriptors
//     or goroutines than before, every repository passes `git fsck --strict`,
//     and every branch on the server is one its client pushed. 50 clients for
//     20 s by default; GITFLEET_SOAK_CLIENTS and GITFLEET_SOAK_DURATION change
//     that (`bench/run -reliability` runs 200 clients for 60 s).
//   - TestDiskFullPush: a push that does not fit on the repository file system
//     (a small tmpfs mounted over the server's repositories) fails with git's
//     "No space left on device", leaves the repository's refs as they were and
//     fsck clean, and the next push that fits succeeds.
//   - TestPrimaryKilledDuringMirrorSync: the primary is killed (SIGKILL of its
//     process group) while a mirror runs its initial sync; the mirror never
//     serves part of a push, and converges once the primary is back.
//   - TestSidecarKilledUnderLoad: the storage sidecar is killed while clients
//     clone and push; it is restarted, only the operations in flight fail, and
//     nothing is corrupt.
//   - TestClockSkewDiagnosed: a mirror whose clock disagrees with the
//     primary's by more than the signing skew gets a failing clock check, with
//     the offset and the fix, from `server -diagnose`.
//
// Fuzz targets live beside the parsers in each package; CI runs each for 5 s
// (see .ci/run).
//
// # Operating systems
//
// The tests run on Linux only (every test file has a linux build tag): they
// read /proc for descriptors, goroutines and working directories, mount a
// tmpfs, and kill process groups; on other systems the package is empty.
//
// # Typical usage
//
//	go test -race -count=1 ./reliability/
//	GITFLEET_SOAK_CLIENTS=200 GITFLEET_SOAK_DURATION=60s go test -count=1 -run TestSoak ./reliability/
package reliability
