package node

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/props"
	bolt "go.etcd.io/bbolt"
)

// DiagnoseTokenFile, in Home.ConfigDir(), holds the token with which Diagnose
// asks a running mirror for its diagnosis (the database is locked while the
// mirror runs). Only whoever can read the home, and so the database, can read
// it.
const DiagnoseTokenFile = "diagnose-token"

// DiagnosticsPath is a running mirror's diagnosis endpoint.
const DiagnosticsPath = PathMirroring + "diagnostics"

// DiagnoseTimeout bounds a whole diagnosis.
const DiagnoseTimeout = 2 * time.Minute

// Diagnose runs the mirror doctor (mirror.Diagnose) for the mirror whose home is
// home and whose configuration is cfg. A mirror that never started has its setup
// checked as it would be applied; when the mirror runs (its database is
// locked), the running mirror runs the checks and Diagnose returns its answer.
func Diagnose(ctx context.Context, home gitfleet.Home, cfg *props.Config) (*mirror.Report, error) {
	if cfg.Mode != props.ModeMirror {
		return nil, fmt.Errorf("application.mode is %q: the doctor checks a mirror's setup (set application.mode=mirror)", cfg.Mode)
	}
	if _, err := os.Stat(home.DBFile()); err != nil {
		return mirror.Diagnose(ctx, mirror.Config{Setup: MirrorSetup(cfg)}), nil
	}
	db, err := bolt.Open(home.DBFile(), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return askRunningMirror(ctx, home, cfg)
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	key, _ := mirror.LoadKey(home) // nil when missing: the checks that need it say so
	return mirror.Diagnose(ctx, mirror.Config{State: mirror.NewBoltState(db), Key: key, Setup: MirrorSetup(cfg)}), nil
}

// askRunningMirror fetches the diagnosis from the mirror running on home.
func askRunningMirror(ctx context.Context, home gitfleet.Home, cfg *props.Config) (*mirror.Report, error) {
	token, err := os.ReadFile(filepath.Join(home.ConfigDir(), DiagnoseTokenFile))
	if err != nil {
		return nil, fmt.Errorf("the mirror's database is in use, and its diagnosis token cannot be read: %w", err)
	}
	url := strings.TrimRight(LocalURL(cfg), "/") + DiagnosticsPath
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the mirror's database is in use, and the running mirror did not answer at %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the running mirror answered %s", resp.Status)
	}
	var r mirror.Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("the running mirror's diagnosis: %w", err)
	}
	return &r, nil
}

// LocalURL is how a process on this machine reaches the node's HTTP server.
func LocalURL(cfg *props.Config) string {
	host := cfg.Server.Address
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	scheme := "http"
	if cfg.Server.SSL.Enabled {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(cfg.Server.Port))
}

// newDiagnoseToken writes a fresh token for Diagnose and returns it.
func newDiagnoseToken(home gitfleet.Home) (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b[:])
	if err := props.WriteFileAtomic(filepath.Join(home.ConfigDir(), DiagnoseTokenFile), []byte(token+"\n"), 0o600); err != nil {
		return "", err
	}
	return token, nil
}

// diagnosticsHandler runs the doctor in the running mirror for a caller holding
// the token.
func diagnosticsHandler(token string, mcfg mirror.Config) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"errors": []map[string]string{{"message": "a diagnosis token is required"}}})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), DiagnoseTimeout)
		defer cancel()
		writeJSON(w, http.StatusOK, mirror.Diagnose(ctx, mcfg))
	}
}

// setupAdvice runs the doctor after a failed mirror start and returns its failed
// checks with their actions, for the startup error.
func setupAdvice(ctx context.Context, mcfg mirror.Config) string {
	ctx, cancel := context.WithTimeout(ctx, DiagnoseTimeout)
	defer cancel()
	report := mirror.Diagnose(ctx, mcfg)
	var b strings.Builder
	for _, c := range report.Checks {
		if c.Status == mirror.CheckFail {
			fmt.Fprintf(&b, "\n  %s: %s\n    fix: %s", c.Title, c.Observed, c.Action)
		}
	}
	return b.String()
}
