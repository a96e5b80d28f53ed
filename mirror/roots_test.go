package mirror_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
)

// childURLEnv carries the URL to check into the re-executed test binary.
const childURLEnv = "GITFLEET_MIRROR_ROOTS_CHILD_URL"

// rootsChild runs in the child process of TestSystemRootsHonourSSLCertFile, where
// SSL_CERT_FILE is set before the system pool is first loaded, and prints the
// outcome of checking url.
func rootsChild(url string) {
	err := mirror.CheckHTTPS(context.Background(), url, nil, nil)
	var ce *mirror.CertError
	switch {
	case err == nil:
		os.Stdout.WriteString("RESULT trusted\n")
	case errors.As(err, &ce):
		os.Stdout.WriteString("RESULT " + string(ce.Failed[0]) + " " + ce.Roots + "\n")
	default:
		os.Stdout.WriteString("RESULT error " + err.Error() + "\n")
	}
}

// TestSystemRootsHonourSSLCertFile shows that with no RootCAs the system roots
// are used, and that SSL_CERT_FILE replaces them, as a production mirror relies on.
func TestSystemRootsHonourSSLCertFile(t *testing.T) {
	ca := testutil.NewCA(t, "roots test CA")
	srv := testutil.StartTLSServer(t, ca.Issue(t, testutil.LeafOptions{}), http.NotFoundHandler())
	other := testutil.NewCA(t, "unrelated CA")
	tests := []struct {
		name, certFile, want string
	}{
		{"test CA in SSL_CERT_FILE", ca.File, "RESULT trusted"},
		{"other CA in SSL_CERT_FILE", other.File, "RESULT chain the system root store"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childURLEnv+"="+srv.URL, "SSL_CERT_FILE="+tc.certFile, "SSL_CERT_DIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("child output %q does not contain %q", out, tc.want)
			}
		})
	}
}
