package main

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
	bolt "go.etcd.io/bbolt"
)

// app is the node's application state: the database, the repository storage and
// what the REST API and the SSH callbacks share.
type app struct {
	db       *bolt.DB
	repos    mesh.Repos
	log      *slog.Logger
	now      func() time.Time
	status   *nodeStatus
	creds    adminCreds
	repoMu   sync.Mutex   // serialises repository creation and deletion
	upstream http.Handler // the mirroring API (primary only); nil when absent
	// sshBase is the SSH base URL clone links are made from
	// (ssh://git@host:7999 or plugin.ssh.baseurl).
	sshBase string
	// meshState reports the sidecar's state for /rest/api/1.0/admin/mesh.
	meshState func() any
	// handler serves HTTP; it grows from /status alone to the full API.
	handler atomic.Pointer[http.Handler]
}

func (a *app) handleMeshState(w http.ResponseWriter, r *http.Request) {
	if a.meshState == nil {
		writeJSON(w, http.StatusOK, map[string]string{"state": "IN_PROCESS"})
		return
	}
	writeJSON(w, http.StatusOK, a.meshState())
}

// setHandler installs the HTTP handler requests are served by from now on.
func (a *app) setHandler(h http.Handler) { a.handler.Store(&h) }

// ServeHTTP serves with the current handler.
func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*a.handler.Load()).ServeHTTP(w, r) }
