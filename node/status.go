package node

import (
	"encoding/json"
	"net/http"
	"sort"
	"sync"
)

// The node's start-up states, as GET /status reports them.
const (
	StateStarting = "STARTING" // 503, with the components still awaited
	StateRunning  = "RUNNING"  // 200
	StateStopping = "STOPPING" // 503, while the node drains
)

// The components a node waits for before it reports RUNNING, in start order.
const (
	ComponentDatabase = "database"
	ComponentMesh     = "mesh"
	ComponentSSH      = "ssh"
)

// status tracks start-up: StateStarting, naming the components not yet up, until
// every component is ready, then StateRunning; StateStopping once the node
// drains.
type status struct {
	mu       sync.Mutex
	waiting  map[string]bool
	stopping bool
}

func newStatus(components ...string) *status {
	s := &status{waiting: map[string]bool{}}
	for _, c := range components {
		s.waiting[c] = true
	}
	return s
}

// ready marks component as up.
func (s *status) ready(component string) {
	s.mu.Lock()
	delete(s.waiting, component)
	s.mu.Unlock()
}

// stop marks the node as stopping.
func (s *status) stop() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
}

// snapshot returns the state and the components still awaited.
func (s *status) snapshot() (string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return StateStopping, nil
	}
	if len(s.waiting) == 0 {
		return StateRunning, nil
	}
	w := make([]string, 0, len(s.waiting))
	for c := range s.waiting {
		w = append(w, c)
	}
	sort.Strings(w)
	return StateStarting, w
}

// ServeHTTP answers GET /status: 200 {"state":"RUNNING"}, else 503 with the state
// and, while starting, the components awaited ("waitingFor").
func (s *status) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	state, waiting := s.snapshot()
	code := http.StatusServiceUnavailable
	if state == StateRunning {
		code = http.StatusOK
	}
	body := map[string]any{"state": state}
	if len(waiting) > 0 {
		body["waitingFor"] = waiting
	}
	writeJSON(w, code, body)
}

// writeJSON writes v as the JSON response body with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}
