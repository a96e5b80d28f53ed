package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The embedded database holds everything the node must remember across restarts.
// Each REST write is one bbolt transaction, so a crash leaves either all of it or
// none of it.
var (
	bucketProjects   = []byte("projects")    // KEY -> project
	bucketRepos      = []byte("repos")       // KEY/slug -> repository
	bucketKeys       = []byte("keys")        // id (8 bytes big-endian) -> sshKey
	bucketKeyIndex   = []byte("keys-by-fp")  // SHA256 fingerprint -> id
	bucketPerms      = []byte("permissions") // KEY\x00user -> permission
	bucketSettings   = []byte("settings")    // name -> value
	appBuckets       = [][]byte{bucketProjects, bucketRepos, bucketKeys, bucketKeyIndex, bucketPerms, bucketSettings}
	errNotFound      = errors.New("not found")
	errConflict      = errors.New("conflict")
	errBadRequest    = errors.New("bad request")
	dbOpenTimeout    = 5 * time.Second
	settingAdminHash = []byte("admin.passwordHash")
	settingAdminUser = []byte("admin.username")
)

// openDB opens (creating) the node's database and its buckets.
func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: dbOpenTimeout})
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w (is another server running with this home?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range appBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return errNotFound
	}
	return json.Unmarshal(data, v)
}

func u64key(n uint64) []byte {
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	return b[:]
}
