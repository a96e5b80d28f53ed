package mirror

import (
	"sync"
	"time"
)

// AuthCacheConfig tunes how the mirror caches the upstream's answers about
// users' read access.
type AuthCacheConfig struct {
	// Allowed is how long a "may read" answer is trusted. Zero means 5 minutes.
	Allowed time.Duration
	// Denied is how long a "may not read" answer is trusted. Zero means 30 seconds.
	Denied time.Duration
	// Stale is how long past its expiry an answer keeps serving while the
	// upstream cannot be reached. Zero means 1 hour; negative means never.
	Stale time.Duration
	// MaxEntries bounds the cache. Zero means 10,000.
	MaxEntries int
}

// authEntry is one cached answer.
type authEntry struct {
	allowed bool
	user    string
	expires time.Time
}

// authCache caches the upstream's /authenticate answers per key and repository.
type authCache struct {
	cfg AuthCacheConfig
	mu  sync.Mutex
	m   map[string]authEntry
}

func (c *authCache) get(key string) (authEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return e, ok
}

func (c *authCache) put(key string, e authEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]authEntry{}
	}
	max := c.cfg.MaxEntries
	if max <= 0 {
		max = 10000
	}
	if len(c.m) >= max {
		for k, old := range c.m {
			if now.After(old.expires) {
				delete(c.m, k)
			}
		}
		for k := range c.m { // still full: drop arbitrary entries
			if len(c.m) < max {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = e
}
