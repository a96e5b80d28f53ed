package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The example's buckets in the node's bbolt database (the mirroring role keeps
// its own, see mirror.BoltState). Records are JSON.
var (
	bucketProjects   = []byte("projects")    // KEY -> project
	bucketRepos      = []byte("repos")       // KEY/slug -> repository
	bucketKeys       = []byte("keys")        // id (8 bytes big-endian) -> sshKey
	bucketKeyIndex   = []byte("keys-by-fp")  // SHA256 fingerprint -> id
	bucketPerms      = []byte("permissions") // KEY\x00user -> permission
	bucketSettings   = []byte("settings")    // name -> value
	appBuckets       = [][]byte{bucketProjects, bucketRepos, bucketKeys, bucketKeyIndex, bucketPerms, bucketSettings}
	settingAdminHash = []byte("admin.passwordHash")
	settingAdminUser = []byte("admin.username")
)

// dbOpenTimeout bounds the wait for another process's lock on the database.
const dbOpenTimeout = 5 * time.Second

// openDB opens (creating) the node's database and the example's buckets.
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

// boltState keeps the example's state in a bbolt database opened by openDB,
// the default state. Every method is one bbolt transaction.
type boltState struct {
	db *bolt.DB
}

// newBoltState returns the state kept in db, which openDB opened. Closing db is
// the caller's business.
func newBoltState(db *bolt.DB) *boltState { return &boltState{db: db} }

func repoKey(projectKey, slug string) []byte { return []byte(projectKey + "/" + slug) }

func permKey(projectKey, user string) []byte { return []byte(projectKey + "\x00" + user) }

func u64key(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// getJSON decodes the record under key into v; errNotFound when there is none.
func getJSON(b *bolt.Bucket, key []byte, v any) error {
	data := b.Get(key)
	if data == nil {
		return errNotFound
	}
	return json.Unmarshal(data, v)
}

// CreateProject implements state.
func (s *boltState) CreateProject(ctx context.Context, p project) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProjects)
		if b.Get([]byte(p.Key)) != nil {
			return fmt.Errorf("%w: project %s already exists", errConflict, p.Key)
		}
		return putJSON(b, []byte(p.Key), p)
	})
}

// Project implements state.
func (s *boltState) Project(ctx context.Context, key string) (project, error) {
	var p project
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketProjects).Get([]byte(key))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &p)
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: project %s does not exist", errNotFound, key)
	}
	return p, err
}

// Projects implements state.
func (s *boltState) Projects(ctx context.Context) ([]project, error) {
	var out []project
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProjects).ForEach(func(_, v []byte) error {
			var p project
			if err := json.Unmarshal(v, &p); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// CreateRepo implements state.
func (s *boltState) CreateRepo(ctx context.Context, r repository) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketProjects).Get([]byte(r.Project)) == nil {
			return fmt.Errorf("%w: project %s does not exist", errNotFound, r.Project)
		}
		b := tx.Bucket(bucketRepos)
		if b.Get(repoKey(r.Project, r.Slug)) != nil {
			return fmt.Errorf("%w: repository %s/%s already exists", errConflict, r.Project, r.Slug)
		}
		return putJSON(b, repoKey(r.Project, r.Slug), r)
	})
}

// Repo implements state.
func (s *boltState) Repo(ctx context.Context, key, slug string) (repository, error) {
	var r repository
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRepos).Get(repoKey(key, slug))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &r)
	})
	if err == nil && !found {
		err = fmt.Errorf("%w: repository %s/%s does not exist", errNotFound, key, slug)
	}
	return r, err
}

// Repos implements state. A project's records are one range of keys
// ("KEY/slug"); the result is sorted by project and slug all the same.
func (s *boltState) Repos(ctx context.Context, key string) ([]repository, error) {
	var out []repository
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRepos).Cursor()
		var prefix []byte
		if key != "" {
			prefix = []byte(key + "/")
		}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r repository
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	sortRepos(out)
	return out, err
}

// SetRequireSignedPush implements state.
func (s *boltState) SetRequireSignedPush(ctx context.Context, key, slug string, require bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRepos)
		var r repository
		if err := getJSON(b, repoKey(key, slug), &r); err != nil {
			if errors.Is(err, errNotFound) {
				return fmt.Errorf("%w: repository %s/%s does not exist", errNotFound, key, slug)
			}
			return err
		}
		r.RequireSignedPush = require
		return putJSON(b, repoKey(key, slug), r)
	})
}

// DeleteRepo implements state.
func (s *boltState) DeleteRepo(ctx context.Context, key, slug string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		repos := tx.Bucket(bucketRepos)
		if repos.Get(repoKey(key, slug)) == nil {
			return fmt.Errorf("%w: repository %s/%s does not exist", errNotFound, key, slug)
		}
		keys, idx := tx.Bucket(bucketKeys), tx.Bucket(bucketKeyIndex)
		var drop [][]byte
		var fps []string
		keys.ForEach(func(k, v []byte) error {
			var sk sshKey
			if json.Unmarshal(v, &sk) == nil && sk.Project == key && sk.Slug == slug {
				drop = append(drop, k)
				fps = append(fps, sk.Fingerprint)
			}
			return nil
		})
		for i, k := range drop {
			if err := keys.Delete(k); err != nil {
				return err
			}
			if err := idx.Delete([]byte(fps[i])); err != nil {
				return err
			}
		}
		return repos.Delete(repoKey(key, slug))
	})
}

// AddKey implements state.
func (s *boltState) AddKey(ctx context.Context, k sshKey) (sshKey, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketKeyIndex)
		if idx.Get([]byte(k.Fingerprint)) != nil {
			return fmt.Errorf("%w: this key is already registered (%s)", errConflict, k.Fingerprint)
		}
		if k.Project != "" {
			if tx.Bucket(bucketRepos).Get(repoKey(k.Project, k.Slug)) == nil {
				return fmt.Errorf("%w: repository %s/%s does not exist", errNotFound, k.Project, k.Slug)
			}
		}
		keys := tx.Bucket(bucketKeys)
		id, err := keys.NextSequence()
		if err != nil {
			return err
		}
		k.ID = id
		if err := putJSON(keys, u64key(id), k); err != nil {
			return err
		}
		return idx.Put([]byte(k.Fingerprint), u64key(id))
	})
	if err != nil {
		return sshKey{}, err
	}
	return k, nil
}

// KeyByFingerprint implements state.
func (s *boltState) KeyByFingerprint(ctx context.Context, fingerprint string) (sshKey, error) {
	var k sshKey
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketKeyIndex).Get([]byte(fingerprint))
		if id == nil {
			return fmt.Errorf("%w: no key %s", errNotFound, fingerprint)
		}
		if err := getJSON(tx.Bucket(bucketKeys), id, &k); err != nil {
			return fmt.Errorf("key %s: %w", fingerprint, err)
		}
		return nil
	})
	return k, err
}

// UserKeys implements state.
func (s *boltState) UserKeys(ctx context.Context, user string) ([]sshKey, error) {
	var out []sshKey
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
			var k sshKey
			if err := json.Unmarshal(v, &k); err != nil {
				return err
			}
			if k.User == user {
				out = append(out, k)
			}
			return nil
		})
	})
	return out, err
}

// DeleteKey implements state.
func (s *boltState) DeleteKey(ctx context.Context, id uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		keys := tx.Bucket(bucketKeys)
		var k sshKey
		if err := getJSON(keys, u64key(id), &k); err != nil {
			return fmt.Errorf("%w: key %d does not exist", errNotFound, id)
		}
		if err := keys.Delete(u64key(id)); err != nil {
			return err
		}
		return tx.Bucket(bucketKeyIndex).Delete([]byte(k.Fingerprint))
	})
}

// SetPermission implements state.
func (s *boltState) SetPermission(ctx context.Context, key, user, perm string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketProjects).Get([]byte(key)) == nil {
			return fmt.Errorf("%w: project %s does not exist", errNotFound, key)
		}
		return tx.Bucket(bucketPerms).Put(permKey(key, user), []byte(perm))
	})
}

// Permission implements state.
func (s *boltState) Permission(ctx context.Context, key, user string) (string, error) {
	var p string
	err := s.db.View(func(tx *bolt.Tx) error {
		p = string(tx.Bucket(bucketPerms).Get(permKey(key, user)))
		return nil
	})
	return p, err
}

// Admin implements state.
func (s *boltState) Admin(ctx context.Context) (user string, passwordHash []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		user = string(b.Get(settingAdminUser))
		if h := b.Get(settingAdminHash); h != nil {
			passwordHash = bytes.Clone(h)
		}
		return nil
	})
	return user, passwordHash, err
}

// SetAdmin implements state.
func (s *boltState) SetAdmin(ctx context.Context, user string, passwordHash []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		if err := b.Put(settingAdminUser, []byte(user)); err != nil {
			return err
		}
		return b.Put(settingAdminHash, passwordHash)
	})
}
