package mirror

import (
	"encoding/binary"
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

var cursorKey = []byte("cursor")

// repoState is what the mirror stores about one repository.
type repoState struct {
	LastSync time.Time `json:"lastSync"`
}

// loadCursor returns the stored change-feed cursor (0 when none).
func (m *Mirror) loadCursor() uint64 {
	var c uint64
	_ = m.cfg.DB.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(nodeBucket); b != nil {
			if v := b.Get(cursorKey); len(v) == 8 {
				c = binary.BigEndian.Uint64(v)
			}
		}
		return nil
	})
	return c
}

// saveCursor stores the change-feed cursor.
func (m *Mirror) saveCursor(c uint64) {
	err := m.cfg.DB.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(nodeBucket)
		if err != nil {
			return err
		}
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], c)
		return b.Put(cursorKey, v[:])
	})
	if err != nil {
		m.log.Error("store change-feed cursor", "err", err)
	}
}

// saveRepo records a successful sync of key.
func (m *Mirror) saveRepo(key string, at time.Time) {
	v, _ := json.Marshal(repoState{LastSync: at})
	err := m.cfg.DB.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(nodeBucket)
		if err != nil {
			return err
		}
		rb, err := b.CreateBucketIfNotExists(reposBucket)
		if err != nil {
			return err
		}
		return rb.Put([]byte(key), v)
	})
	if err != nil {
		m.log.Error("store repository sync state", "repo", key, "err", err)
	}
}

// forgetRepo removes the stored state of key.
func (m *Mirror) forgetRepo(key string) {
	err := m.cfg.DB.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket(nodeBucket); b != nil {
			if rb := b.Bucket(reposBucket); rb != nil {
				return rb.Delete([]byte(key))
			}
		}
		return nil
	})
	if err != nil {
		m.log.Error("forget repository sync state", "repo", key, "err", err)
	}
}

// loadRepoStates returns the stored last-sync times.
func (m *Mirror) loadRepoStates() map[string]time.Time {
	out := map[string]time.Time{}
	_ = m.cfg.DB.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(nodeBucket)
		if b == nil || b.Bucket(reposBucket) == nil {
			return nil
		}
		return b.Bucket(reposBucket).ForEach(func(k, v []byte) error {
			var rs repoState
			if json.Unmarshal(v, &rs) == nil {
				out[string(k)] = rs.LastSync
			}
			return nil
		})
	})
	return out
}
