//go:build unix

package main

import (
	"encoding/json"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestRepositoryJSONNamesItsProject: the REST API's repository objects carry
// their project's name, on create, get and list.
func TestRepositoryJSONNamesItsProject(t *testing.T) {
	n := startNode(t, testutil.ServerOptions{})
	n.MustAPI(201, "POST", "/rest/api/1.0/projects", map[string]string{"key": "PROJ", "name": "The Project"})
	type repo struct {
		Project struct{ Key, Name string }
	}
	var created, got repo
	json.Unmarshal(n.MustAPI(201, "POST", "/rest/api/1.0/projects/PROJ/repos", map[string]string{"name": "r"}), &created)
	json.Unmarshal(n.MustAPI(200, "GET", "/rest/api/1.0/projects/PROJ/repos/r", nil), &got)
	var list struct{ Values []repo }
	json.Unmarshal(n.MustAPI(200, "GET", "/rest/api/1.0/projects/PROJ/repos", nil), &list)
	for what, r := range map[string]repo{"created": created, "get": got} {
		if r.Project.Key != "PROJ" || r.Project.Name != "The Project" {
			t.Errorf("%s: project %+v", what, r.Project)
		}
	}
	if len(list.Values) != 1 || list.Values[0].Project.Name != "The Project" {
		t.Errorf("list: %+v", list.Values)
	}
}
