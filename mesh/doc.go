// Package mesh is gitfleet's repository storage: the in-process Store that owns bare
// repositories on disk and runs git on them, and the storage sidecar (Server,
// Client, Supervisor) that serves a Store to its parent over loopback.
//
// Both Store and Client implement Repos, the one interface for repository storage.
package mesh
