package props

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenEnviron is the environment the golden files are checked with.
var goldenEnviron = []string{"SERVER_PROXY_PORT=8443", "PLUGIN_SSH_DISABLED_KEY_EXCHANGES_0_=diffie-hellman-group1-sha1", "BASE_URL=https://git.example.com"}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./props -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestGoldenLoad checks, for each file in testdata/golden, the effective raw
// properties with their sources, every problem Check finds, and the derived URLs.
func TestGoldenLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.properties"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			p, err := LoadFile(t.Context(), path, LoadOptions{Environ: goldenEnviron})
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := p.WriteJSON(&b); err != nil {
				t.Fatal(err)
			}
			c, problems := Check(p)
			fmt.Fprintf(&b, "encoding: %s\n", p.File().Encoding())
			fmt.Fprintf(&b, "public base URL: %s\nSSH base URL: %s\n", c.PublicBaseURL(), c.SSHBaseURL())
			fmt.Fprintf(&b, "config: %+v\n", configSummary(c))
			for _, pr := range problems {
				fmt.Fprintln(&b, pr)
			}
			checkGolden(t, strings.TrimSuffix(path, ".properties")+".golden", b.Bytes())
		})
	}
}

// configSummary prints the typed fields without the unexported bookkeeping.
func configSummary(c *Config) string {
	return fmt.Sprintf("%+v %+v %+v mode=%s %+v %+v", c.Server, c.SSH, c.Mesh, c.Mode, c.Setup, c.Mirroring)
}

// TestGoldenEdit edits a copy of testdata/golden/bitbucket.properties and
// compares the saved bytes with testdata/golden/bitbucket.edited.
func TestGoldenEdit(t *testing.T) {
	src := filepath.Join("testdata", "golden", "bitbucket.properties")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bitbucket.properties")
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Set("server.port", "8990")
	f.Set("plugin.ssh.disabled.ciphers", "aes128-cbc")
	f.Delete("setup.sysadmin.password")
	f.Delete("plugin.ssh.disabled.macs[0]")
	f.Set("setup.displayName", "Équipe: Git #1")
	f.Set("plugin.mirroring.upstream.url", "https://primary.example.com")
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "golden", "bitbucket.edited"), saved)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode after Save = %v, want 0640 kept", st.Mode().Perm())
	}
}
