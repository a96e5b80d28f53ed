package mesh

import (
	"container/list"
	"maps"
	"sync"
)

// refsCacheMin is the number of refs from which a repository's refs are kept in
// memory (see refsCache): below it, reading them from disk costs little.
const refsCacheMin = 1024

// refsCacheMax bounds the refs all cached repositories hold together (about
// 100 bytes each); the least recently used repositories go first.
const refsCacheMax = 1 << 20

// refsCache keeps the refs of repositories with many of them in memory, so that
// Refs and RefsHash after a push read no files: a repository of 100,000 loose
// refs takes about 2 s to read (see the plumbing figures), which a subscriber
// such as the mirror feed, asking for the refs hash after every push, would pay
// for a push of a single ref. An entry is filled by a read under the
// repository's read lock and changed only under its write lock, by the same
// transactions the store publishes as events (see collectUpdates), in commit
// order; anything the store cannot account for exactly (an incomplete or
// unresolved report, EventGap, a deletion or creation of the repository) drops
// the entry, and the next read goes to disk. Each entry memoises its hash until
// the next change.
type refsCache struct {
	mu      sync.Mutex
	entries map[string]*list.Element // repoKey -> *refsEntry
	lru     list.List                // front: most recently used
	size    int                      // refs held in all
}

type refsEntry struct {
	key  string
	refs map[string]string
	hash string // HashRefs(refs), or "" until asked
}

// get returns a copy of the cached refs of key, or nil.
func (c *refsCache) get(key string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.touch(key)
	if e == nil {
		return nil
	}
	return maps.Clone(e.refs)
}

// hash returns the cached refs hash of key, or "" when key is not cached.
func (c *refsCache) hash(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.touch(key)
	if e == nil {
		return ""
	}
	if e.hash == "" {
		e.hash = HashRefs(e.refs)
	}
	return e.hash
}

func (c *refsCache) touch(key string) *refsEntry {
	el := c.entries[key]
	if el == nil {
		return nil
	}
	c.lru.MoveToFront(el)
	return el.Value.(*refsEntry)
}

// fill caches refs, as just read under the repository's read lock, when there
// are enough of them; the cache takes refs over, so the caller must not change
// it. hash is HashRefs(refs) when the caller has it, else "".
func (c *refsCache) fill(key string, refs map[string]string, hash string) {
	if len(refs) < refsCacheMin || len(refs) > refsCacheMax {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*list.Element{}
	}
	if el := c.entries[key]; el != nil {
		c.removeLocked(el)
	}
	c.entries[key] = c.lru.PushFront(&refsEntry{key: key, refs: refs, hash: hash})
	c.size += len(refs)
	for c.size > refsCacheMax {
		c.removeLocked(c.lru.Back())
	}
}

// apply brings key's entry forward by committed transactions, in order; with
// exact false (the report was incomplete or unresolved) it drops the entry.
// The caller holds the repository's write lock.
func (c *refsCache) apply(key string, txns [][]RefUpdate, exact bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.entries[key]
	if el == nil {
		return
	}
	if !exact {
		c.removeLocked(el)
		return
	}
	e := el.Value.(*refsEntry)
	for _, txn := range txns {
		for _, u := range txn {
			if isZeroID(u.New) {
				if _, ok := e.refs[u.Ref]; ok {
					delete(e.refs, u.Ref)
					c.size--
				}
				continue
			}
			if _, ok := e.refs[u.Ref]; !ok {
				c.size++
			}
			e.refs[u.Ref] = u.New
		}
	}
	if len(txns) > 0 {
		e.hash = ""
	}
	for c.size > refsCacheMax && c.lru.Len() > 0 {
		c.removeLocked(c.lru.Back())
	}
}

// drop forgets key.
func (c *refsCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.entries[key]; el != nil {
		c.removeLocked(el)
	}
}

func (c *refsCache) removeLocked(el *list.Element) {
	e := el.Value.(*refsEntry)
	c.lru.Remove(el)
	delete(c.entries, e.key)
	c.size -= len(e.refs)
}
