package props

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

func TestLoadMissingFileUsesDefaults(t *testing.T) {
	home := testutil.NewHome(t)
	var logs bytes.Buffer
	p, err := Load(t.Context(), home.Dir, LoadOptions{Environ: []string{"SERVER_PORT=8000"}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if p.File() != nil {
		t.Error("File() is not nil without a file")
	}
	if p.Path() != home.Properties {
		t.Errorf("Path() = %q, want %q", p.Path(), home.Properties)
	}
	if !strings.Contains(logs.String(), "properties file not found") || !strings.Contains(logs.String(), home.Properties) {
		t.Errorf("log does not name the file looked for: %s", logs.String())
	}
	c, err := p.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Port != 8000 || c.SSH.Port != 7999 {
		t.Errorf("ports %d, %d", c.Server.Port, c.SSH.Port)
	}
}

func TestLoadErrors(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Log("running as root: the unreadable-file case uses a directory in place of the file")
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, h testutil.Home)
		want  string
	}{
		{"file is a directory", func(t *testing.T, h testutil.Home) {
			if err := os.Mkdir(h.Properties, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "cannot read properties"},
		{"malformed escape", func(t *testing.T, h testutil.Home) {
			h.WriteProperties(t, "# ok\nserver.port=7990\nsetup.displayName=\\u00e\n")
		}, "bitbucket.properties:3: malformed \\uxxxx encoding"},
	}
	if os.Geteuid() != 0 {
		tests = append(tests, struct {
			name  string
			setup func(t *testing.T, h testutil.Home)
			want  string
		}{"unreadable file", func(t *testing.T, h testutil.Home) {
			h.WriteProperties(t, "a=b\n")
			if err := os.Chmod(h.Properties, 0); err != nil {
				t.Fatal(err)
			}
		}, "permission denied"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testutil.NewHome(t)
			tt.setup(t, h)
			_, err := Load(t.Context(), h.Dir, LoadOptions{Environ: []string{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Load(ctx, t.TempDir(), LoadOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context: %v", err)
	}
}

func TestLoadUsesProcessEnvironment(t *testing.T) {
	t.Setenv("PLUGIN_SSH_PORT", "2222")
	home := testutil.NewHome(t)
	home.WriteProperties(t, "plugin.ssh.port=7999\n")
	p, err := Load(t.Context(), home.Dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := p.Lookup(KeySSHPort); e.Value != "2222" || e.Source.Env != "PLUGIN_SSH_PORT" {
		t.Errorf("plugin.ssh.port = %+v, want 2222 from the environment", e)
	}
	p, err = Load(t.Context(), home.Dir, LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := p.Get(KeySSHPort); v != "7999" {
		t.Errorf("with an empty Environ plugin.ssh.port = %q", v)
	}
}

func TestWriteJSON(t *testing.T) {
	p := New(mustParse(t, "b=${x}\na=1\nserver.port=1\n"), []string{"SERVER_PORT=2"})
	var b bytes.Buffer
	if err := p.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{
		{"key": "a", "value": "1", "source": "t.properties:2"},
		{"key": "b", "value": "${x}", "source": "t.properties:1"},
		{"key": "server.port", "value": "2", "source": "env SERVER_PORT"},
	}
	if len(got) != len(want) {
		t.Fatalf("dump = %s", b.String())
	}
	for i := range want {
		if !equalMaps(got[i], want[i]) {
			t.Errorf("item %d = %v, want %v", i, got[i], want[i])
		}
	}
}
