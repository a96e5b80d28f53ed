// Package portfwdtest starts a portfwd.Forwarder for a test: its listeners
// bound before Start returns, closed (and Serve's result checked) when the
// test ends.
package portfwdtest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet/portfwd"
)

// Start parses text (HAProxy syntax; name is used in errors), binds its
// listeners and serves them in the background until the test ends.
func Start(t testing.TB, text, name string) *portfwd.Forwarder {
	t.Helper()
	cfg, err := portfwd.ParseConfig(strings.NewReader(text), name)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := portfwd.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := cfg.Listen(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- fw.Serve(ls...) }()
	t.Cleanup(func() {
		fw.Close()
		if err := <-served; !errors.Is(err, portfwd.ErrServerClosed) {
			t.Errorf("portfwd: Serve: %v", err)
		}
	})
	return fw
}
