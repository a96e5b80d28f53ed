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
	bind := requestBinding("", []byte(`{"project":"P","slug":"r"}`), http.Header{})
	good := makeToken(key, "POST", "/v1/create", bind, now)
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
		{"forged key", makeToken([]byte("another key, same length, 32 by"), "POST", "/v1/create", bind, now), "POST", "/v1/create", now, false},
		{"time edited", strings.Replace(good, "v2.1800000000", "v2.1800000100", 1), "POST", "/v1/create", now.Add(100 * time.Second), false},
		{"old version", strings.Replace(good, "v2.", "v1.", 1), "POST", "/v1/create", now, false},
		{"empty", "", "POST", "/v1/create", now, false},
		{"garbage", "v1.x.y.z", "POST", "/v1/create", now, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := checkToken(key, c.token, c.method, c.path, bind, c.at)
			if (err == nil) != c.ok {
				t.Fatalf("checkToken = %v, want ok=%v", err, c.ok)
			}
		})
	}
	// The binding: another body, query or X-Gitfleet header is another request.
	for name, other := range map[string]string{
		"other body":   requestBinding("", []byte(`{"project":"P","slug":"s"}`), http.Header{}),
		"other query":  requestBinding("session=2", []byte(`{"project":"P","slug":"r"}`), http.Header{}),
		"other header": requestBinding("", []byte(`{"project":"P","slug":"r"}`), http.Header{hdrRepo: {"P/s"}}),
	} {
		if _, _, err := checkToken(key, good, "POST", "/v1/create", other, now); err == nil {
			t.Errorf("%s: token accepted", name)
		}
	}
	// Other headers are not bound.
	if _, _, err := checkToken(key, good, "POST", "/v1/create", requestBinding("", []byte(`{"project":"P","slug":"r"}`), http.Header{"Content-Type": {"x"}}), now); err != nil {
		t.Errorf("a header outside X-Gitfleet-* changed the binding: %v", err)
	}
}

func TestNonceCache(t *testing.T) {
	var c nonceCache
	now := time.Unix(1_800_000_000, 0)
	if !c.use("a", now, now) || c.use("a", now, now.Add(time.Second)) {
		t.Fatal("a nonce was accepted twice")
	}
	// Once its token has expired the entry goes (and the token would be refused as
	// expired anyway).
	later := now.Add(TokenLifetime + 3*time.Second)
	c.use("b", later, later)
	if _, ok := c.seen["a"]; ok {
		t.Fatal("an expired nonce was kept")
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
	gitHeaders := http.Header{hdrService: {string(gitfleet.ReceivePack)}, hdrRepo: {"PROJ/r"}}
	createBind := requestBinding("", []byte(body), gitHeaders)
	// A token used once for a request that did something harmless (a create of
	// PROJ/x refused for... no: a list), then replayed.
	replayed := authScheme + makeToken(key, "POST", pathCreate, createBind, time.Now())
	{
		req, _ := http.NewRequest("POST", base+pathGit, strings.NewReader(body))
		req.Header.Set("Authorization", replayed)
		req.Header = req.Header.Clone()
		_ = req
	}
	for _, c := range []struct {
		name, auth, path string
	}{
		{"none", "", pathCreate},
		{"wrong scheme", "Bearer " + makeToken(key, "POST", pathCreate, createBind, time.Now()), pathCreate},
		{"forged", authScheme + makeToken(other, "POST", pathCreate, createBind, time.Now()), pathCreate},
		{"expired", authScheme + makeToken(key, "POST", pathCreate, createBind, time.Now().Add(-TokenLifetime-2*time.Second)), pathCreate},
		{"for another path", authScheme + makeToken(key, "POST", pathList, createBind, time.Now()), pathCreate},
		{"for another body", authScheme + makeToken(key, "POST", pathCreate, requestBinding("", []byte(`{"project":"PROJ","slug":"other"}`), gitHeaders), time.Now()), pathCreate},
		{"git upgrade, forged", authScheme + makeToken(other, "POST", pathGit, createBind, time.Now()), pathGit},
		{"git upgrade, for another repository", authScheme + makeToken(key, "POST", pathGit, requestBinding("", []byte(body), http.Header{hdrService: {string(gitfleet.ReceivePack)}, hdrRepo: {"PROJ/other"}}), time.Now()), pathGit},
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
	// A good token works once; sent again, with the same request, it is refused.
	qBody := `{"project":"PROJ","slug":"q"}`
	once := authScheme + makeToken(key, "POST", pathCreate, requestBinding("", []byte(qBody), http.Header{}), time.Now())
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
		req, _ := http.NewRequest("POST", base+pathCreate, strings.NewReader(qBody))
		req.Header.Set("Authorization", once)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("use %d of one token: status %d, want %d", i+1, resp.StatusCode, want)
		}
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
	f.Add(makeToken(key, "POST", "/v1/create", "", now), "POST", "/v1/create")
	f.Add("v2.1800000000.00.AAAA", "GET", "/v1/health")
	f.Add("v2..", "", "")
	f.Fuzz(func(t *testing.T, token, method, path string) {
		bind := requestBinding(path, []byte(method), http.Header{hdrRepo: {path}})
		_, _, err := checkToken(key, token, method, path, bind, now)
		if err == nil && !strings.HasPrefix(token, "v2.") {
			t.Fatalf("accepted %q", token)
		}
		// A token made for these inputs verifies; for others it does not.
		good := makeToken(key, method, path, bind, now)
		if _, _, err := checkToken(key, good, method, path, bind, now); err != nil {
			t.Fatalf("own token refused: %v", err)
		}
		if _, _, err := checkToken(key, good, method+"x", path, bind, now); err == nil {
			t.Fatal("token accepted for another method")
		}
		if _, _, err := checkToken(key, good, method, path, bind+"x", now); err == nil {
			t.Fatal("token accepted for another binding")
		}
	})
}
