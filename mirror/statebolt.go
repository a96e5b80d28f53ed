package mirror

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
	bolt "go.etcd.io/bbolt"
)

// BoltState keeps a mirror's or an upstream's state in a bbolt database, the
// default store: the mirror side under the bucket "gitfleet.mirror.node", the
// upstream side under "gitfleet.mirror.upstream", so that a node's own data in
// the same database is never touched. It implements MirrorState and
// UpstreamState; every write is one bbolt transaction.
type BoltState struct {
	db *bolt.DB
}

// NewBoltState returns the state kept in db. It writes nothing: buckets are
// created by the first write that needs them, so a database opened read-only
// (for a diagnosis) can be read. Closing db is the caller's business.
func NewBoltState(db *bolt.DB) *BoltState { return &BoltState{db: db} }

// The mirror side's keys, under nodeBucket.
var (
	nodeBucket      = []byte("gitfleet.mirror.node")
	identityKey     = []byte("identity")
	registrationKey = []byte("registration")
	cursorKey       = []byte("cursor")
	reposBucket     = []byte("repos") // nested: PROJECT/slug -> repoSyncRecord
)

// repoSyncRecord is what the mirror stores about one repository.
type repoSyncRecord struct {
	LastSync time.Time `json:"lastSync"`
}

// nodeGet reads key of the node bucket in tx; nil when absent.
func nodeGet(tx *bolt.Tx, key []byte) []byte {
	if b := tx.Bucket(nodeBucket); b != nil {
		return b.Get(key)
	}
	return nil
}

// nodePut writes key of the node bucket in tx.
func nodePut(tx *bolt.Tx, key, v []byte) error {
	b, err := tx.CreateBucketIfNotExists(nodeBucket)
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

// Identity implements MirrorState.
func (s *BoltState) Identity(ctx context.Context) (Identity, error) {
	var id Identity
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := nodeGet(tx, identityKey)
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &id)
	})
	if err == nil && !found {
		err = fmt.Errorf("mirror: no identity stored: %w", gitfleet.ErrNotFound)
	}
	return id, err
}

// SetIdentity implements MirrorState.
func (s *BoltState) SetIdentity(ctx context.Context, id Identity) error {
	v, err := json.Marshal(id)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(nodeBucket)
		if err != nil {
			return err
		}
		if _, err := b.CreateBucketIfNotExists(reposBucket); err != nil {
			return err
		}
		return b.Put(identityKey, v)
	})
}

// Registration implements MirrorState.
func (s *BoltState) Registration(ctx context.Context) (Registration, error) {
	var reg Registration
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := nodeGet(tx, registrationKey); v != nil {
			return json.Unmarshal(v, &reg)
		}
		return nil
	})
	return reg, err
}

// SetRegistration implements MirrorState.
func (s *BoltState) SetRegistration(ctx context.Context, r Registration) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return nodePut(tx, registrationKey, v) })
}

// Cursor implements MirrorState.
func (s *BoltState) Cursor(ctx context.Context) (uint64, error) {
	var c uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := nodeGet(tx, cursorKey); len(v) == 8 {
			c = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return c, err
}

// SetCursor implements MirrorState.
func (s *BoltState) SetCursor(ctx context.Context, cursor uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], cursor)
	return s.db.Update(func(tx *bolt.Tx) error { return nodePut(tx, cursorKey, v[:]) })
}

// RepoSyncs implements MirrorState.
func (s *BoltState) RepoSyncs(ctx context.Context) (map[gitfleet.RepoName]time.Time, error) {
	out := map[gitfleet.RepoName]time.Time{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(nodeBucket)
		if b == nil || b.Bucket(reposBucket) == nil {
			return nil
		}
		return b.Bucket(reposBucket).ForEach(func(k, v []byte) error {
			var rs repoSyncRecord
			if json.Unmarshal(v, &rs) == nil {
				p, sl, _ := strings.Cut(string(k), "/")
				out[gitfleet.RepoName{Project: p, Slug: sl}] = rs.LastSync
			}
			return nil
		})
	})
	return out, err
}

// SetRepoSync implements MirrorState.
func (s *BoltState) SetRepoSync(ctx context.Context, repo gitfleet.RepoName, at time.Time) error {
	v, err := json.Marshal(repoSyncRecord{LastSync: at})
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(nodeBucket)
		if err != nil {
			return err
		}
		rb, err := b.CreateBucketIfNotExists(reposBucket)
		if err != nil {
			return err
		}
		return rb.Put([]byte(repo.String()), v)
	})
}

// DeleteRepoSync implements MirrorState.
func (s *BoltState) DeleteRepoSync(ctx context.Context, repo gitfleet.RepoName) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(nodeBucket); b != nil {
			if rb := b.Bucket(reposBucket); rb != nil {
				return rb.Delete([]byte(repo.String()))
			}
		}
		return nil
	})
}

// The upstream side's buckets, nested under upstreamBucket.
var (
	upstreamBucket = []byte("gitfleet.mirror.upstream")
	serversBucket  = []byte("servers") // id -> MirrorRecord
	keysBucket     = []byte("keys")    // key fingerprint -> id
	removedBucket  = []byte("removed") // id -> MirrorRecord of a deleted mirror
	noncesBucket   = []byte("nonces")  // be64(timestamp) id \n nonce -> nil
	feedMetaBucket = []byte("feed")    // "last" -> be64(last seq)
	feedLastKey    = []byte("last")
)

// upGet returns a nested upstream bucket in a read transaction; nil when absent.
func upGet(tx *bolt.Tx, name []byte) *bolt.Bucket {
	if top := tx.Bucket(upstreamBucket); top != nil {
		return top.Bucket(name)
	}
	return nil
}

// upPut returns a nested upstream bucket in a write transaction, creating it.
func upPut(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	top, err := tx.CreateBucketIfNotExists(upstreamBucket)
	if err != nil {
		return nil, err
	}
	return top.CreateBucketIfNotExists(name)
}

// getRecord reads the record of id from bucket name, or an error wrapping
// gitfleet.ErrNotFound.
func getRecord(tx *bolt.Tx, name []byte, id string) (*MirrorRecord, error) {
	var v []byte
	if b := upGet(tx, name); b != nil {
		v = b.Get([]byte(id))
	}
	if v == nil {
		return nil, fmt.Errorf("mirror %q: %w", id, gitfleet.ErrNotFound)
	}
	var r MirrorRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// putRecord writes r to bucket name.
func putRecord(tx *bolt.Tx, name []byte, r *MirrorRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b, err := upPut(tx, name)
	if err != nil {
		return err
	}
	return b.Put([]byte(r.ID), v)
}

// PurgeRemoved implements UpstreamState.
func (s *BoltState) PurgeRemoved(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		b := upGet(tx, removedBucket)
		if b == nil {
			return nil
		}
		var ids [][]byte
		err := b.ForEach(func(k, v []byte) error {
			var r MirrorRecord
			if err := json.Unmarshal(v, &r); err == nil && r.Updated.Before(before) {
				ids = append(ids, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := b.Delete(id); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}

// Mirror implements UpstreamState.
func (s *BoltState) Mirror(ctx context.Context, id string) (rec *MirrorRecord, removed bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		rec, err = getRecord(tx, serversBucket, id)
		if isNotFound(err) {
			removed = true
			rec, err = getRecord(tx, removedBucket, id)
		}
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return rec, removed, nil
}

// MirrorByKey implements UpstreamState.
func (s *BoltState) MirrorByKey(ctx context.Context, fingerprint string) (rec *MirrorRecord, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		var id []byte
		if b := upGet(tx, keysBucket); b != nil {
			id = b.Get([]byte(fingerprint))
		}
		if id == nil {
			return fmt.Errorf("mirror key %s: %w", fingerprint, gitfleet.ErrNotFound)
		}
		rec, err = getRecord(tx, serversBucket, string(id))
		return err
	})
	return rec, err
}

// Mirrors implements UpstreamState.
func (s *BoltState) Mirrors(ctx context.Context) ([]*MirrorRecord, error) {
	var out []*MirrorRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		b := upGet(tx, serversBucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r MirrorRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, &r)
			return nil
		})
	})
	return out, err
}

// AddMirror implements UpstreamState.
func (s *BoltState) AddMirror(ctx context.Context, rec *MirrorRecord) (existing *MirrorRecord, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if _, err := getRecord(tx, removedBucket, rec.ID); err == nil {
			return ErrMirrorRemoved
		} else if !isNotFound(err) {
			return err
		}
		existing, err = getRecord(tx, serversBucket, rec.ID)
		switch {
		case err == nil:
			return ErrMirrorExists
		case !isNotFound(err):
			return err
		}
		existing = nil
		keys, err := upPut(tx, keysBucket)
		if err != nil {
			return err
		}
		if keys.Get([]byte(rec.Fingerprint)) != nil {
			return ErrKeyInUse
		}
		if err := keys.Put([]byte(rec.Fingerprint), []byte(rec.ID)); err != nil {
			return err
		}
		return putRecord(tx, serversBucket, rec)
	})
	return existing, err
}

// UpdateMirror implements UpstreamState.
func (s *BoltState) UpdateMirror(ctx context.Context, id string, change func(*MirrorRecord) error) (rec *MirrorRecord, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if rec, err = getRecord(tx, serversBucket, id); err != nil {
			return err
		}
		if err := change(rec); err != nil {
			return err
		}
		return putRecord(tx, serversBucket, rec)
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// RemoveMirror implements UpstreamState.
func (s *BoltState) RemoveMirror(ctx context.Context, id string, at time.Time) (rec *MirrorRecord, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		if rec, err = getRecord(tx, serversBucket, id); err != nil {
			return err
		}
		keys, err := upPut(tx, keysBucket)
		if err != nil {
			return err
		}
		if err := keys.Delete([]byte(rec.Fingerprint)); err != nil {
			return err
		}
		servers, err := upPut(tx, serversBucket)
		if err != nil {
			return err
		}
		if err := servers.Delete([]byte(id)); err != nil {
			return err
		}
		rec.Updated = at
		return putRecord(tx, removedBucket, rec)
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// UseNonce implements UpstreamState. Nonces are keyed by timestamp first, so
// pruning walks only the expired ones.
func (s *BoltState) UseNonce(ctx context.Context, id string, timestamp int64, nonce string, pruneBefore int64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := upPut(tx, noncesBucket)
		if err != nil {
			return err
		}
		key := make([]byte, 8, 8+len(id)+1+len(nonce))
		binary.BigEndian.PutUint64(key, uint64(timestamp))
		key = append(key, id...)
		key = append(key, '\n')
		key = append(key, nonce...)
		if b.Get(key) != nil {
			return ErrReplay
		}
		if err := b.Put(key, nil); err != nil {
			return err
		}
		horizon := uint64(max(pruneBefore, 0))
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(k) >= 8 && binary.BigEndian.Uint64(k[:8]) < horizon; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// FeedSeq implements UpstreamState.
func (s *BoltState) FeedSeq(ctx context.Context) (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := upGet(tx, feedMetaBucket); b != nil {
			if v := b.Get(feedLastKey); len(v) == 8 {
				seq = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return seq, err
}

// SetFeedSeq implements UpstreamState.
func (s *BoltState) SetFeedSeq(ctx context.Context, seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := upPut(tx, feedMetaBucket)
		if err != nil {
			return err
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], seq)
		return b.Put(feedLastKey, v[:])
	})
}
