package mirror

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The upstream's buckets, nested under one top-level bucket so that the primary's
// own data in the same database is never touched.
var (
	upstreamBucket = []byte("gitfleet.mirror.upstream")
	serversBucket  = []byte("servers") // id -> serverRecord
	keysBucket     = []byte("keys")    // key fingerprint -> id
	removedBucket  = []byte("removed") // id -> serverRecord of a deleted mirror
	noncesBucket   = []byte("nonces")  // be64(timestamp) id \n nonce -> nil
	feedMetaBucket = []byte("feed")    // "last" -> be64(last seq)
)

// serverRecord is what the upstream stores about one mirror.
type serverRecord struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	BaseURL     string    `json:"baseUrl"`
	PublicKey   string    `json:"publicKey"`
	Fingerprint string    `json:"fingerprint"`
	State       State     `json:"state"`
	Mode        Mode      `json:"mode,omitempty"`
	Projects    []string  `json:"projects,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// view returns the administrator's view of the record.
func (r *serverRecord) view() MirrorServer {
	return MirrorServer{ID: r.ID, Name: r.Name, BaseURL: r.BaseURL, State: r.State,
		MirroringMode: r.Mode, Projects: slices.Clone(r.Projects), PublicKey: r.PublicKey}
}

// canRead reports whether the record grants read access to project.
func (r *serverRecord) canRead(project string) bool {
	if r.State != StateAccepted {
		return false
	}
	if r.Mode == ModeAllProjects {
		return true
	}
	_, found := slices.BinarySearch(r.Projects, project)
	return found
}

// errNoRecord is returned by the store when a mirror id is unknown.
var errNoRecord = errors.New("mirror: no such mirror")

// initUpstreamBuckets creates the buckets.
func initUpstreamBuckets(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(upstreamBucket)
		if err != nil {
			return err
		}
		for _, b := range [][]byte{serversBucket, keysBucket, removedBucket, noncesBucket, feedMetaBucket} {
			if _, err := top.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
}

// ub returns a nested upstream bucket in tx.
func ub(tx *bolt.Tx, name []byte) *bolt.Bucket {
	return tx.Bucket(upstreamBucket).Bucket(name)
}

// getRecord reads the record of id from bucket name, or errNoRecord.
func getRecord(tx *bolt.Tx, name []byte, id string) (*serverRecord, error) {
	v := ub(tx, name).Get([]byte(id))
	if v == nil {
		return nil, errNoRecord
	}
	var r serverRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// putRecord writes r to bucket name.
func putRecord(tx *bolt.Tx, name []byte, r *serverRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return ub(tx, name).Put([]byte(r.ID), v)
}

// listRecords returns every live record, ordered by id.
func listRecords(tx *bolt.Tx) ([]*serverRecord, error) {
	var out []*serverRecord
	err := ub(tx, serversBucket).ForEach(func(k, v []byte) error {
		var r serverRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		out = append(out, &r)
		return nil
	})
	return out, err
}

// useNonce records nonce for mirror id at timestamp ts, and fails with ErrReplay
// when it was recorded before. Entries older than twice the skew are pruned: a
// request that old is refused by the clock check alone.
func useNonce(tx *bolt.Tx, id string, ts int64, nonce string, now time.Time) error {
	b := ub(tx, noncesBucket)
	key := make([]byte, 8, 8+len(id)+1+len(nonce))
	binary.BigEndian.PutUint64(key, uint64(ts))
	key = append(key, id...)
	key = append(key, '\n')
	key = append(key, nonce...)
	if b.Get(key) != nil {
		return ErrReplay
	}
	if err := b.Put(key, nil); err != nil {
		return err
	}
	horizon := uint64(now.Add(-2 * MaxSkew).Unix())
	c := b.Cursor()
	for k, _ := c.First(); k != nil && len(k) >= 8 && binary.BigEndian.Uint64(k[:8]) < horizon; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
