//go:build linux

package reliability

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
)

// skewedUpstream is an HTTPS reverse proxy in front of the primary that shifts
// the Date header of every response by skew: to a mirror behind it, the
// primary's clock looks that far off.
func skewedUpstream(t *testing.T, ca *testutil.CA, primary *testutil.ServerNode, skew *atomic.Int64) string {
	t.Helper()
	target, err := url.Parse(primary.URL(""))
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}
	rp.ModifyResponse = func(resp *http.Response) error {
		resp.Header.Set("Date", time.Now().Add(time.Duration(skew.Load())).UTC().Format(http.TimeFormat))
		return nil
	}
	srv := testutil.StartTLSServer(t, ca.Issue(t, testutil.LeafOptions{}), rp)
	return srv.URL
}

// diagnoseClock runs `server -diagnose` for the mirror's home and returns the
// exit code, the whole output, and the clock check's status and text (its
// report row and the action row under it) from the table.
func diagnoseClock(t *testing.T, m *testutil.ServerNode) (code int, out, status, text string) {
	t.Helper()
	cmd := exec.Command(serverBin, "-home", m.Home, "-diagnose")
	cmd.Env = m.Env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	// Rows are "N  NAME  STATUS  OBSERVED", continued by indented "-> action"
	// rows.
	out = buf.String()
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != mirror.CheckClock {
			continue
		}
		text = line
		for _, next := range lines[i+1:] {
			if !strings.HasPrefix(strings.TrimSpace(next), "->") {
				break
			}
			text += "\n" + next
		}
		return code, out, strings.ToLower(f[2]), text
	}
	return code, out, "", ""
}

// TestClockSkewDiagnosed: a mirror whose upstream's clock (as the upstream's
// Date header tells it) is ten minutes off, beyond the signing skew
// (mirror.MaxSkew), gets a failing clock check from `server -diagnose`, with
// the offset and the fix; with the clocks in step the same check passes.
func TestClockSkewDiagnosed(t *testing.T) {
	ca := testutil.NewCA(t, "gitfleet reliability CA")
	primary := testutil.StartServer(t, testutil.ServerOptions{Bin: serverBin, CA: ca})
	var skew atomic.Int64
	upstream := skewedUpstream(t, ca, primary, &skew)
	m, _ := startMirrorOf(t, primary, ca, "skewed-mirror", "PLUGIN_MIRRORING_UPSTREAM_URL="+upstream)
	// The doctor reads the mirror's database, which the running node holds.
	if err := m.Stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mirror exit: %v\n%s", err, m.Stderr)
	}

	if _, out, status, _ := diagnoseClock(t, m); status != "pass" {
		t.Fatalf("with the clocks in step, the clock check is %q, want pass:\n%s", status, out)
	}

	skew.Store(int64(10 * time.Minute))
	code, out, status, text := diagnoseClock(t, m)
	t.Logf("server -diagnose with the upstream's clock 10 minutes ahead:\n%s", out)
	if code != 1 {
		t.Errorf("exit code %d, want 1 (a check failed)", code)
	}
	if status != "fail" {
		t.Fatalf("the clock check is %q with a 10 minute skew (limit %v), want fail:\n%s", status, mirror.MaxSkew, out)
	}
	// "this mirror's clock is 9m59s behind the upstream's": the Date header
	// has one-second resolution.
	_, rest, _ := strings.Cut(text, "clock is ")
	amount, _, _ := strings.Cut(rest, " ")
	if off, err := time.ParseDuration(amount); err != nil || off < 10*time.Minute-5*time.Second || off > 10*time.Minute+5*time.Second {
		t.Errorf("the clock check does not report the 10 minute offset (%q, %v):\n%s", amount, err, text)
	}
	for _, want := range []string{"behind", "synchronise both clocks"} {
		if !strings.Contains(text, want) {
			t.Errorf("the clock check does not say %q:\n%s", want, text)
		}
	}
}
