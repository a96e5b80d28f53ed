package mirror_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/mirror/mirrortest"
)

// TestShutdown: Shutdown stops Run, which returns ErrMirrorClosed; Shutdown and
// Close are safe to call again, and Run after them returns at once.
func TestShutdown(t *testing.T) {
	p := mirrortest.StartPrimary(t, mirrortest.PrimaryOptions{})
	m := p.NewMirror(t, mirrortest.MirrorOptions{})
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	mirrortest.WaitState(t, m, mirror.StatePending)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, mirror.ErrMirrorClosed) {
			t.Fatalf("run after shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close after shutdown: %v", err)
	}
	if err := m.Run(context.Background()); !errors.Is(err, mirror.ErrMirrorClosed) {
		t.Fatalf("run after close: %v", err)
	}
}
