package node

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNodeStatus(t *testing.T) {
	s := newStatus("ssh", "database", "mesh")
	if st, w := s.snapshot(); st != "STARTING" || strings.Join(w, ",") != "database,mesh,ssh" {
		t.Fatalf("got %s %v", st, w)
	}
	s.ready("database")
	s.ready("mesh")
	s.ready("ssh")
	if st, _ := s.snapshot(); st != "RUNNING" {
		t.Fatalf("got %s", st)
	}
	s.stop()
	if st, _ := s.snapshot(); st != "STOPPING" {
		t.Fatalf("got %s", st)
	}
}

func TestStatusEndpoint(t *testing.T) {
	s := newStatus("database", "mesh", "ssh")
	get := func() (int, map[string]any) {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
		var body map[string]any
		json.Unmarshal(rec.Body.Bytes(), &body)
		return rec.Code, body
	}
	code, body := get()
	if code != 503 || body["state"] != "STARTING" || fmt.Sprint(body["waitingFor"]) != "[database mesh ssh]" {
		t.Fatalf("starting: %d %v", code, body)
	}
	s.ready("database")
	s.ready("mesh")
	if code, body = get(); code != 503 || fmt.Sprint(body["waitingFor"]) != "[ssh]" {
		t.Fatalf("waiting for ssh: %d %v", code, body)
	}
	s.ready("ssh")
	if code, body = get(); code != 200 || body["state"] != "RUNNING" {
		t.Fatalf("running: %d %v", code, body)
	}
	s.stop()
	if code, body = get(); code != 503 || body["state"] != "STOPPING" {
		t.Fatalf("stopping: %d %v", code, body)
	}
}
