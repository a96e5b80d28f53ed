package props

import (
	"path/filepath"
	"testing"
)

func TestHomeDir(t *testing.T) {
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	tests := []struct {
		flag   string
		lookup func(string) (string, bool)
		want   string
	}{
		{"/srv/node", env(map[string]string{HomeEnv: "/env/node"}), "/srv/node"},
		{"", env(map[string]string{HomeEnv: "/env/node"}), "/env/node"},
		{"", env(map[string]string{HomeEnv: ""}), DefaultHome},
		{"", env(nil), DefaultHome},
		{"", nil, DefaultHome},
	}
	for _, tt := range tests {
		if got := HomeDir(tt.flag, tt.lookup); got != tt.want {
			t.Errorf("HomeDir(%q) = %q, want %q", tt.flag, got, tt.want)
		}
	}
	if got, want := PropertiesPath("/srv/node"), filepath.Join("/srv/node", "shared", "bitbucket.properties"); got != want {
		t.Errorf("PropertiesPath = %q, want %q", got, want)
	}
}
