package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/ssh"
)

// sshKey is a public key registered for a user, or an access key of one repository.
// A key (by fingerprint) is registered at most once across the node.
type sshKey struct {
	ID          uint64    `json:"id"`
	Text        string    `json:"text"`
	Label       string    `json:"label,omitempty"`
	Fingerprint string    `json:"fingerprint"`
	Algorithm   string    `json:"algorithmType"`
	BitLength   int       `json:"bitLength,omitempty"`
	User        string    `json:"user,omitempty"`       // user keys
	Project     string    `json:"project,omitempty"`    // access keys
	Slug        string    `json:"slug,omitempty"`       // access keys
	Permission  string    `json:"permission,omitempty"` // access keys: REPO_READ or REPO_WRITE
	Created     time.Time `json:"created"`
}

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,254}$`)

func validUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return fmt.Errorf("%w: user name %q must be 1-255 letters, digits, '.', '_', '@' or '-'", errBadRequest, name)
	}
	return nil
}

// parseKeyText parses one authorized_keys line (options are not accepted) and
// applies the node's key policy.
func (a *app) parseKeyText(text string) (sshKey, ssh.PublicKey, error) {
	text = strings.TrimSpace(text)
	if text == "" || strings.ContainsAny(text, "\r\n") {
		return sshKey{}, nil, fmt.Errorf("%w: the key text must be one public key line, such as the content of ~/.ssh/id_ed25519.pub", errBadRequest)
	}
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(text))
	if err != nil {
		return sshKey{}, nil, fmt.Errorf("%w: not an SSH public key: %v", errBadRequest, err)
	}
	if len(options) > 0 || len(strings.TrimSpace(string(rest))) > 0 {
		return sshKey{}, nil, fmt.Errorf("%w: give one public key line without options", errBadRequest)
	}
	if err := (gitfleet.KeyPolicy{}).Check(pub); err != nil {
		return sshKey{}, nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	k := sshKey{
		Text:        strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
		Label:       comment,
		Fingerprint: ssh.FingerprintSHA256(pub),
		Algorithm:   pub.Type(),
		BitLength:   gitfleet.RSABits(pub),
		Created:     a.now().UTC(),
	}
	return k, pub, nil
}

// addKey stores k, refusing a key that is registered already.
func (a *app) addKey(k sshKey) (sshKey, error) {
	err := a.db.Update(func(tx *bolt.Tx) error {
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
	return k, err
}

// listKeys returns the keys for which keep returns true, in id order.
func (a *app) listKeys(keep func(sshKey) bool) ([]sshKey, error) {
	var out []sshKey
	err := a.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(_, v []byte) error {
			var k sshKey
			if err := jsonUnmarshal(v, &k); err != nil {
				return err
			}
			if keep(k) {
				out = append(out, k)
			}
			return nil
		})
	})
	return out, err
}

func (a *app) deleteKey(idText string) error {
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: key id %q is not a number", errBadRequest, idText)
	}
	return a.db.Update(func(tx *bolt.Tx) error {
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

// keyByFingerprint finds the registered key with that fingerprint.
func (a *app) keyByFingerprint(fp string) (sshKey, bool) {
	var k sshKey
	err := a.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketKeyIndex).Get([]byte(fp))
		if id == nil {
			return errNotFound
		}
		return getJSON(tx.Bucket(bucketKeys), id, &k)
	})
	return k, err == nil
}
