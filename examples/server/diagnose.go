package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/props"
	bolt "go.etcd.io/bbolt"
)

// diagnoseTokenFile holds the token with which `server -diagnose` asks a running
// mirror for its diagnosis (the database is locked while the mirror runs). Only
// whoever can read the home (and so the database) can read it.
const diagnoseTokenFile = "diagnose-token"

// diagnosticsPath is the running mirror's diagnosis endpoint.
const diagnosticsPath = "/rest/mirroring/1.0/diagnostics"

// diagnoseTimeout bounds the whole diagnosis.
const diagnoseTimeout = 2 * time.Minute

// diagnose is `server -diagnose`: it runs mirror.Diagnose for the mirror in home
// and prints the report as a table; exit 0 when every check passes, else 1.
// When the mirror is running (its database is locked), the running mirror runs
// the checks and this command prints its answer.
func diagnose(home string, logger *slog.Logger, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), diagnoseTimeout)
	defer cancel()
	report, err := diagnoseReport(ctx, home)
	if err != nil {
		fmt.Fprintln(stderr, "server: -diagnose:", err)
		return 1
	}
	report.WriteTable(stdout)
	if !report.OK() {
		return 1
	}
	return 0
}

func diagnoseReport(ctx context.Context, home string) (*mirror.Report, error) {
	l := homeLayout(home)
	p, err := props.Load(ctx, home, props.LoadOptions{})
	if err != nil {
		return nil, err
	}
	cfg, _ := props.Check(p) // the doctor explains setup problems itself
	if cfg.Mode != props.ModeMirror {
		return nil, fmt.Errorf("application.mode is %q: the doctor checks a mirror's setup (set application.mode=mirror)", cfg.Mode)
	}
	if _, err := os.Stat(l.DB); err != nil {
		// Never started: check the setup as it would be applied.
		return mirror.Diagnose(ctx, mirror.Config{Setup: mirrorSetup(cfg)}), nil
	}
	db, err := bolt.Open(l.DB, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if errors.Is(err, bolt.ErrTimeout) {
		return askRunningMirror(ctx, cfg, l)
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	key, _ := mirror.LoadKey(gitfleet.Home(home)) // nil when missing: the checks that need it say so
	return mirror.Diagnose(ctx, mirror.Config{State: mirror.NewBoltState(db), Key: key, Setup: mirrorSetup(cfg)}), nil
}

// askRunningMirror fetches the diagnosis from the mirror running on this home.
func askRunningMirror(ctx context.Context, cfg *props.Config, l layout) (*mirror.Report, error) {
	token, err := os.ReadFile(filepath.Join(l.Config, diagnoseTokenFile))
	if err != nil {
		return nil, fmt.Errorf("the mirror's database is in use, and its diagnosis token cannot be read: %w", err)
	}
	url := strings.TrimRight(localURL(cfg), "/") + diagnosticsPath
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

// localURL is how a process on this machine reaches the node's HTTP server.
func localURL(cfg *props.Config) string {
	host := cfg.Server.Address
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	scheme := "http"
	if cfg.Server.SSL.Enabled {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s", scheme, joinHostPort(host, cfg.Server.Port))
}

// newDiagnoseToken writes a fresh token for `server -diagnose` and returns it.
func newDiagnoseToken(l layout) (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := hex.EncodeToString(b[:])
	if err := props.WriteFileAtomic(filepath.Join(l.Config, diagnoseTokenFile), []byte(token+"\n"), 0o600); err != nil {
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
			writeError(w, fmt.Errorf("%w: a diagnosis token is required", errUnauthorized))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), diagnoseTimeout)
		defer cancel()
		writeJSON(w, http.StatusOK, mirror.Diagnose(ctx, mcfg))
	}
}

// setupAdvice runs the doctor after a failed mirror start and returns its failed
// checks with their actions, for the startup error.
func setupAdvice(ctx context.Context, mcfg mirror.Config) string {
	ctx, cancel := context.WithTimeout(ctx, diagnoseTimeout)
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

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}
