package mirror_test

import (
	"context"
	"errors"
	"testing"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// TestUpstreamWrappersCompose: the primary's grant to accepted mirrors wraps the
// primary's own key lookup and authorization.
func TestUpstreamWrappersCompose(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	m := p.NewMirror(t, mirrortest.MirrorOptions{Name: "syd"})
	mirrortest.Run(t, m)
	mirrortest.WaitState(t, m, mirror.StatePending)
	user := testutil.GenerateKey(t, testutil.Ed25519)
	ctx := context.Background()
	errNext := errors.New("refused by the primary")
	nextKeys := 0
	keys := p.Upstream.PublicKeyCallback(func(ctx context.Context, c sshserve.ConnInfo, k ssh.PublicKey) (sshserve.Principal, error) {
		nextKeys++
		return sshserve.Principal{Name: "alice"}, nil
	})
	nextAuth := 0
	authz := p.Upstream.Authorizer(func(ctx context.Context, c sshserve.ConnInfo, pr sshserve.Principal, project, slug string, a sshserve.Access) error {
		nextAuth++
		return errNext
	})
	mirrorP := sshserve.Principal{Key: m.PublicKey()}

	// Pending: the mirror's key is the primary's business.
	if pr, err := keys(ctx, sshserve.ConnInfo{}, m.PublicKey()); err != nil || pr.Name != "alice" || nextKeys != 1 {
		t.Fatalf("pending mirror's key: %+v %v", pr, err)
	}
	p.Accept(t, m.ID(), mirror.ModeSelectedProjects, "PROJ")
	pr, err := keys(ctx, sshserve.ConnInfo{}, m.PublicKey())
	if err != nil || pr.Name != "mirror:syd" || pr.ID != "mirror:"+m.ID() || nextKeys != 1 {
		t.Fatalf("accepted mirror's key: %+v %v (next called %d times)", pr, err, nextKeys)
	}
	if pr, err := keys(ctx, sshserve.ConnInfo{}, user.Public); err != nil || pr.Name != "alice" || nextKeys != 2 {
		t.Fatalf("a user's key: %+v %v", pr, err)
	}
	for _, tc := range []struct {
		name      string
		p         sshserve.Principal
		project   string
		access    sshserve.Access
		want      error
		nextCalls int
	}{
		{"mirror reads its project", mirrorP, "PROJ", sshserve.AccessRead, nil, 0},
		{"mirror reads another project", mirrorP, "OTHER", sshserve.AccessRead, sshserve.ErrDenied, 0},
		{"mirror pushes", mirrorP, "PROJ", sshserve.AccessWrite, sshserve.ErrDenied, 0},
		{"a user", sshserve.Principal{Key: user.Public}, "PROJ", sshserve.AccessRead, errNext, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nextAuth = 0
			err := authz(ctx, sshserve.ConnInfo{}, tc.p, tc.project, "app", tc.access)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) || nextAuth != tc.nextCalls {
				t.Fatalf("got %v after %d calls of next, want %v after %d", err, nextAuth, tc.want, tc.nextCalls)
			}
		})
	}
	// Without next, only accepted mirrors pass.
	if _, err := p.Upstream.PublicKeyCallback(nil)(ctx, sshserve.ConnInfo{}, user.Public); err == nil {
		t.Fatal("a user's key passed without a next callback")
	}
	if err := p.Upstream.Authorizer(nil)(ctx, sshserve.ConnInfo{}, mirrorP, "PROJ", "app", sshserve.AccessRead); err != nil {
		t.Fatalf("mirror read without next: %v", err)
	}
}
