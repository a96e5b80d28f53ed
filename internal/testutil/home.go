package testutil

import (
	"os"
	"testing"

	"github.com/gitfleet/gitfleet"
)

// Home is a node's home directory laid out as DESIGN.md says.
type Home struct {
	Dir        string // the home itself
	Shared     string // <home>/shared
	Properties string // <home>/shared/bitbucket.properties (not created)
	Repos      string // <home>/shared/data/repositories
	Config     string // <home>/shared/config (host keys, TLS material)
	DB         string // <home>/shared/data/gitfleet.db (not created)
}

// LayoutHome returns the layout of the home directory dir without touching disk.
func LayoutHome(dir string) Home {
	h := gitfleet.Home(dir)
	return Home{
		Dir:        dir,
		Shared:     h.Shared(),
		Properties: h.PropertiesFile(),
		Repos:      h.RepositoriesDir(),
		Config:     h.ConfigDir(),
		DB:         h.DBFile(),
	}
}

// NewHome creates a temporary home directory with its shared, data/repositories and
// config folders; it is removed at test end.
func NewHome(t testing.TB) Home {
	t.Helper()
	h := LayoutHome(t.TempDir())
	for _, d := range []string{h.Repos, h.Config} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// WriteProperties writes content to the home's bitbucket.properties.
func (h Home) WriteProperties(t testing.TB, content string) {
	t.Helper()
	if err := os.WriteFile(h.Properties, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
