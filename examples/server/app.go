package main

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/node"
)

// app is the example's own part of a node: its state (projects, repositories,
// users' keys and permissions, the administrator; see state) and the REST API
// over it. The node (package node) runs everything else.
type app struct {
	st     state      // projects, repository records, keys, permissions, settings
	repos  mesh.Repos // set once the node's storage is up
	node   *node.Node
	log    *slog.Logger
	now    func() time.Time
	creds  adminCreds
	guard  authGuard  // limits on guessing the administrator's password
	repoMu sync.Mutex // serialises repository creation and deletion
	// sshBase is the SSH base URL clone links are made from
	// (ssh://git@host:7999 or plugin.ssh.baseurl).
	sshBase string
	wg      sync.WaitGroup // the event logger (see logPushes)
	ui      *webUI         // the administrator's pages; nil: none
}

// meshStateJSON is the reply of GET /rest/api/1.0/admin/mesh.
type meshStateJSON struct {
	State    string `json:"state"`
	Attempt  int    `json:"attempt,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Address  string `json:"address,omitempty"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"lastExit,omitempty"`
}

func (a *app) handleMeshState(w http.ResponseWriter, r *http.Request) {
	st, ok := a.node.StorageState()
	if !ok {
		writeJSON(w, http.StatusOK, map[string]string{"state": "IN_PROCESS"})
		return
	}
	writeJSON(w, http.StatusOK, meshStateJSON{State: strings.ToUpper(string(st.Phase)), Attempt: st.Attempt, PID: st.PID,
		Address: st.Addr, Restarts: st.Restarts, LastExit: st.LastExit})
}

// handleMetrics serves the storage's pack cache counters in the Prometheus
// text format, from the in-process store or through the sidecar.
func (a *app) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var st mesh.PackCacheStats
	switch s := a.node.Storage().(type) {
	case *mesh.Store:
		st = s.PackCacheStats()
	case *mesh.Client:
		var err error
		if st, err = s.PackCacheStats(r.Context()); err != nil {
			writeError(w, err)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	st.WritePrometheus(w)
}

// cloneURL returns the SSH clone URL of a repository.
func (a *app) cloneURL(key, slug string) string {
	return gitfleet.CloneURL(a.sshBase, gitfleet.RepoName{Project: key, Slug: slug})
}
