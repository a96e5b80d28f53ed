package main

import (
	"net/http"
	"sort"
	"sync"
)

// nodeStatus tracks start-up: /status answers 503 STARTING, naming the components
// not yet up, until every component is ready, then 200 RUNNING; during shutdown it
// answers 503 STOPPING.
type nodeStatus struct {
	mu       sync.Mutex
	waiting  map[string]bool
	stopping bool
}

func newNodeStatus(components ...string) *nodeStatus {
	s := &nodeStatus{waiting: map[string]bool{}}
	for _, c := range components {
		s.waiting[c] = true
	}
	return s
}

// ready marks component as up.
func (s *nodeStatus) ready(component string) {
	s.mu.Lock()
	delete(s.waiting, component)
	s.mu.Unlock()
}

// stop marks the node as stopping.
func (s *nodeStatus) stop() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
}

// snapshot returns the state name and the components still awaited.
func (s *nodeStatus) snapshot() (string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return "STOPPING", nil
	}
	if len(s.waiting) == 0 {
		return "RUNNING", nil
	}
	w := make([]string, 0, len(s.waiting))
	for c := range s.waiting {
		w = append(w, c)
	}
	sort.Strings(w)
	return "STARTING", w
}

func (a *app) handleStatus(w http.ResponseWriter, r *http.Request) {
	state, waiting := a.status.snapshot()
	if state == "RUNNING" {
		writeJSON(w, http.StatusOK, map[string]any{"state": state})
		return
	}
	body := map[string]any{"state": state}
	if len(waiting) > 0 {
		body["waitingFor"] = waiting
	}
	writeJSON(w, http.StatusServiceUnavailable, body)
}
