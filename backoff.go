package gitfleet

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential delay with jitter, the one retry policy of
// gitfleet: supervisor restarts, event-stream reconnects, accept errors, sync
// retries and registration all wait with it. The zero value waits 100 ms, doubling
// to at most 30 s, each delay shortened at random by up to a fifth.
type Backoff struct {
	// Min is the first delay; zero means 100 ms.
	Min time.Duration
	// Max caps the delay; zero means 30 s. A Max below Min is raised to Min.
	Max time.Duration
	// Factor multiplies the delay at each attempt; zero (or below 1) means 2.
	Factor float64
	// Jitter is the fraction of each delay taken off at random, so that many
	// clients do not retry in step: 0 means 0.2, a negative value means none,
	// values above 1 mean 1.
	Jitter float64
}

// Delay returns the delay before retry attempt n, counted from 1 (n < 1 counts
// as 1): Min·Factor^(n-1), capped at Max, less the jitter.
func (b Backoff) Delay(n int) time.Duration {
	lo, hi, f := b.Min, b.Max, b.Factor
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	hi = max(hi, lo)
	if f < 1 {
		f = 2
	}
	d := float64(lo)
	for i := 1; i < n && d < float64(hi); i++ {
		d *= f
	}
	d = min(d, float64(hi))
	j := b.Jitter
	switch {
	case j == 0:
		j = 0.2
	case j < 0:
		j = 0
	case j > 1:
		j = 1
	}
	if j > 0 {
		d -= d * j * rand.Float64()
	}
	return time.Duration(d)
}

// Wait sleeps for Delay(n) or until ctx ends, and returns ctx.Err() in the
// latter case.
func (b Backoff) Wait(ctx context.Context, n int) error {
	t := time.NewTimer(b.Delay(n))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
