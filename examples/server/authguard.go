package main

import (
	"context"
	"crypto/rand"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The administrator's password check is guarded (authGuard):
//   - an unknown user name costs the same bcrypt comparison as the right one
//     (against a hash of a random password made once), so timing does not tell
//     names apart;
//   - after guardFailures failed attempts within guardWindow from one address,
//     or for one user name from any address, further attempts from that address
//     or for that name are refused with 429 and Retry-After, without a bcrypt,
//     for a block that starts at guardBlock and doubles with each further
//     failure up to guardMaxBlock; a success clears the address;
//   - at most guardSlots bcrypt comparisons run at once, so failed attempts
//     cannot take every core; a request whose credentials were verified before
//     (adminCreds remembers them) needs none and is never held up.
const (
	guardFailures = 5
	guardWindow   = time.Minute
	guardBlock    = time.Second
	guardMaxBlock = 5 * time.Minute
	guardSlots    = 2
	guardEntries  = 10000 // tracked addresses and names; the oldest go first
)

type authGuard struct {
	mu      sync.Mutex
	entries map[string]*guardEntry
	slots   chan struct{}
	once    sync.Once
	dummy   []byte // bcrypt hash of a random password, for unknown names

	compares func() // test hook: counts bcrypt comparisons
}

type guardEntry struct {
	failures     int       // within the window
	windowStart  time.Time // of the current count
	blockedUntil time.Time
	block        time.Duration // the next block's length
}

// dummyHash returns the hash unknown names are compared against.
func (g *authGuard) dummyHash() []byte {
	g.once.Do(func() {
		var b [18]byte
		rand.Read(b[:])
		g.dummy, _ = bcrypt.GenerateFromPassword(b[:], bcrypt.DefaultCost)
		g.slots = make(chan struct{}, guardSlots)
	})
	return g.dummy
}

// blocked returns how long keys are still blocked (the longest), or zero.
func (g *authGuard) blocked(now time.Time, keys ...string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if e := g.entries[k]; e != nil && now.Before(e.blockedUntil) {
			wait = max(wait, e.blockedUntil.Sub(now))
		}
	}
	return wait
}

// failed records a failed attempt for keys.
func (g *authGuard) failed(now time.Time, keys ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.entries == nil {
		g.entries = map[string]*guardEntry{}
	}
	for _, k := range keys {
		e := g.entries[k]
		if e == nil {
			if len(g.entries) >= guardEntries {
				g.evictLocked()
			}
			e = &guardEntry{windowStart: now, block: guardBlock}
			g.entries[k] = e
		}
		if now.Sub(e.windowStart) > guardWindow && now.After(e.blockedUntil) {
			e.failures, e.windowStart, e.block = 0, now, guardBlock
		}
		e.failures++
		if e.failures >= guardFailures {
			e.blockedUntil = now.Add(e.block)
			e.block = min(2*e.block, guardMaxBlock)
		}
	}
}

// succeeded clears key.
func (g *authGuard) succeeded(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.entries, key)
}

func (g *authGuard) evictLocked() {
	var oldest string
	var at time.Time
	for k, e := range g.entries {
		if oldest == "" || e.windowStart.Before(at) {
			oldest, at = k, e.windowStart
		}
	}
	delete(g.entries, oldest)
}

// compare runs one bcrypt comparison within the slots, or fails when ctx ends
// first.
func (g *authGuard) compare(ctx context.Context, hash []byte, pass string) bool {
	g.dummyHash() // makes the slots
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-g.slots }()
	if g.compares != nil {
		g.compares()
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil
}

// clientAddress is the address attempts are counted by.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// tooManyAttempts answers a blocked attempt.
func tooManyAttempts(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Round(time.Second)/time.Second)+1))
	writeJSON(w, http.StatusTooManyRequests, map[string][]apiError{"errors": {{Message: "too many failed sign-in attempts; try again later"}}})
}
