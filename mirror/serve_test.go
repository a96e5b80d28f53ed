package mirror

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// TestMirrorWrappersCompose: the mirror's key lookup and authorization wrap
// what the server had instead of replacing it.
func TestMirrorWrappersCompose(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m := &Mirror{log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: func() time.Time { return now },
		auth:  &authCache{},
		ident: Identity{Setup: SetupConfig{UpstreamURL: "https://up.example.com"}},
		reg:   Registration{State: StateAccepted, Mode: ModeSelectedProjects, Projects: []string{"PROJ"}, SSHBaseURL: "ssh://git@up.example.com:7999"}}
	// A cached "may read" answer, so that no upstream is asked.
	m.auth.put(authorizedLine(key.PublicKey())+"\x00PROJ/app", authEntry{allowed: true, expires: now.Add(time.Hour)}, now)
	ctx := context.Background()
	p := sshserve.Principal{Name: "reader", Key: key.PublicKey()}

	errNext := errors.New("refused by the embedder")
	calls := 0
	next := func(ctx context.Context, c sshserve.ConnInfo, p sshserve.Principal, project, slug string, a sshserve.Access) error {
		calls++
		return errNext
	}
	tests := []struct {
		name          string
		next          sshserve.Authorizer
		project       string
		access        sshserve.Access
		want          error
		wantNextCalls int
	}{
		{"alone, allowed read", nil, "PROJ", sshserve.AccessRead, nil, 0},
		{"allowed read, next refuses", next, "PROJ", sshserve.AccessRead, errNext, 1},
		{"other project: the mirror decides", next, "OTHER", sshserve.AccessRead, sshserve.ErrNotFound, 0},
		{"push: the mirror decides", next, "PROJ", sshserve.AccessWrite, sshserve.ErrDenied, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls = 0
			err := m.Authorizer(tc.next)(ctx, sshserve.ConnInfo{}, p, tc.project, "app", tc.access)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) || calls != tc.wantNextCalls {
				t.Fatalf("got %v after %d calls of next, want %v after %d", err, calls, tc.want, tc.wantNextCalls)
			}
		})
	}

	named := func(ctx context.Context, c sshserve.ConnInfo, k ssh.PublicKey) (sshserve.Principal, error) {
		if ssh.FingerprintSHA256(k) == ssh.FingerprintSHA256(key.PublicKey()) {
			return sshserve.Principal{Name: "admin"}, nil
		}
		return sshserve.Principal{}, errors.New("not mine")
	}
	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	cb := m.PublicKeyCallback(named)
	if got, err := cb(ctx, sshserve.ConnInfo{}, key.PublicKey()); err != nil || got.Name != "admin" {
		t.Fatalf("a key next names: %+v %v", got, err)
	}
	if got, err := cb(ctx, sshserve.ConnInfo{}, other.PublicKey()); err != nil || got.Name != ssh.FingerprintSHA256(other.PublicKey()) {
		t.Fatalf("a key next refuses: %+v %v", got, err)
	}

	srv := &sshserve.Server{Authorizer: next}
	m.ConfigureServer(srv)
	calls = 0
	if err := srv.Authorizer(ctx, sshserve.ConnInfo{}, p, "PROJ", "app", sshserve.AccessRead); !errors.Is(err, errNext) || calls != 1 {
		t.Fatalf("ConfigureServer dropped the server's Authorizer: %v, %d calls", err, calls)
	}
}
