package mesh

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
)

func TestCheckToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	good := makeToken(key, "POST", "/v1/create", now)
	cases := []struct {
		name   string
		token  string
		method string
		path   string
		at     time.Time
		ok     bool
	}{
		{"valid", good, "POST", "/v1/create", now, true},
		{"valid near the end of its life", good, "POST", "/v1/create", now.Add(TokenLifetime), true},
		{"expired", good, "POST", "/v1/create", now.Add(TokenLifetime + time.Second), false},
		{"within clock skew", good, "POST", "/v1/create", now.Add(-MaxClockSkew), true},
		{"from the future", good, "POST", "/v1/create", now.Add(-MaxClockSkew - time.Second), false},
		{"other path", good, "POST", "/v1/delete", now, false},
		{"other method", good, "GET", "/v1/create", now, false},
		{"forged key", makeToken([]byte("another key, same length, 32 by"), "POST", "/v1/create", now), "POST", "/v1/create", now, false},
		{"time edited", strings.Replace(good, "v1.1800000000", "v1.1800000100", 1), "POST", "/v1/create", now.Add(100 * time.Second), false},
		{"empty", "", "POST", "/v1/create", now, false},
		{"garbage", "v1.x.y.z", "POST", "/v1/create", now, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkToken(key, c.token, c.method, c.path, c.at)
			if (err == nil) != c.ok {
				t.Fatalf("checkToken = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// TestServerRefusesBadTokens sends real requests with missing, forged, expired and
// misdirected tokens: each gets 401 and nothing is done.
func TestServerRefusesBadTokens(t *testing.T) {
	s, err := OpenStore(context.Background(), StoreConfig{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key, _ := NewKey()
	l, err := Listen(context.Background(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Store: s, Key: key}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() { srv.Close(); <-served }()
	base := "http://" + l.Addr().String()
	other, _ := NewKey()
	body := `{"project":"PROJ","slug":"r"}`
	for _, c := range []struct {
		name, auth, path string
	}{
		{"none", "", pathCreate},
		{"wrong scheme", "Bearer " + makeToken(key, "POST", pathCreate, time.Now()), pathCreate},
		{"forged", authScheme + makeToken(other, "POST", pathCreate, time.Now()), pathCreate},
		{"expired", authScheme + makeToken(key, "POST", pathCreate, time.Now().Add(-TokenLifetime-2*time.Second)), pathCreate},
		{"for another path", authScheme + makeToken(key, "POST", pathList, time.Now()), pathCreate},
		{"git upgrade, forged", authScheme + makeToken(other, "POST", pathGit, time.Now()), pathGit},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", base+c.path, strings.NewReader(body))
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			req.Header.Set("Upgrade", upgradeProto)
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set(hdrService, string(gitfleet.ReceivePack))
			req.Header.Set(hdrRepo, "PROJ/r")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if ok, _ := s.Exists(context.Background(), "PROJ", "r"); ok {
				t.Fatal("the repository was created by a refused request")
			}
		})
	}
	// And the same call with a good token works, through the Client.
	c := NewClient(ClientConfig{Addr: l.Addr().String(), Key: key})
	defer c.Close()
	if err := c.Create(context.Background(), "PROJ", "r"); err != nil {
		t.Fatal(err)
	}
	bad := NewClient(ClientConfig{Addr: l.Addr().String(), Key: other})
	defer bad.Close()
	if _, err := bad.List(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("client with the wrong key: %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
}

func FuzzCheckToken(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	f.Add(makeToken(key, "POST", "/v1/create", now), "POST", "/v1/create")
	f.Add("v1.1800000000.00.AAAA", "GET", "/v1/health")
	f.Add("v1..", "", "")
	f.Fuzz(func(t *testing.T, token, method, path string) {
		err := checkToken(key, token, method, path, now)
		if err == nil && !strings.HasPrefix(token, "v1.") {
			t.Fatalf("accepted %q", token)
		}
		// A token made for these inputs verifies; for others it does not.
		good := makeToken(key, method, path, now)
		if err := checkToken(key, good, method, path, now); err != nil {
			t.Fatalf("own token refused: %v", err)
		}
		if err := checkToken(key, good, method+"x", path, now); err == nil {
			t.Fatal("token accepted for another method")
		}
	})
}
