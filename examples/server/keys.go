package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
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

// deleteKey removes the key whose id is idText.
func (a *app) deleteKey(ctx context.Context, idText string) error {
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: key id %q is not a number", errBadRequest, idText)
	}
	return a.st.DeleteKey(ctx, id)
}
