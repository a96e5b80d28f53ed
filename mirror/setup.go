package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/ssh"
)

// SetupConfig is a mirror's setup, from bitbucket.properties: setup.displayName,
// setup.baseUrl, plugin.mirroring.upstream.url and plugin.mirroring.upstream.type.
// It is applied on the mirror's first start only; afterwards the stored setup
// wins, and a changed base URL or upstream is an error.
type SetupConfig struct {
	DisplayName  string // setup.displayName; empty means the base URL's host
	BaseURL      string // setup.baseUrl: the mirror's own https:// URL
	UpstreamURL  string // plugin.mirroring.upstream.url: the primary's https:// URL
	UpstreamType string // plugin.mirroring.upstream.type: "server" (empty means "server")
}

// The setup errors.
var (
	ErrSetup = errors.New("mirror: invalid setup")
)

// SetupChangedError reports a setup property whose value differs from the one
// stored at the mirror's first start.
type SetupChangedError struct {
	Property string // e.g. "setup.baseUrl"
	Stored   string
	Given    string
}

// Error implements error.
func (e *SetupChangedError) Error() string {
	what := "the mirror base URL"
	if e.Property == "plugin.mirroring.upstream.url" {
		what = "the mirror's upstream URL"
	}
	return fmt.Sprintf("mirror: %s can only be set once; remove the mirror's home to set it up again (%s is %q, was %q at setup)",
		what, e.Property, e.Given, e.Stored)
}

// validate checks the setup's shape without touching the network.
func (c *SetupConfig) validate() error {
	if c.UpstreamType == "" {
		c.UpstreamType = "server"
	}
	if c.UpstreamType != "server" {
		return fmt.Errorf("%w: plugin.mirroring.upstream.type is %q; only \"server\" is supported", ErrSetup, c.UpstreamType)
	}
	if c.UpstreamURL == "" {
		return fmt.Errorf("%w: plugin.mirroring.upstream.url is not set", ErrSetup)
	}
	if _, err := parseHTTPSURL(c.UpstreamURL); err != nil {
		return fmt.Errorf("%w: plugin.mirroring.upstream.url: %w", ErrSetup, err)
	}
	if c.BaseURL == "" {
		return fmt.Errorf("%w: setup.baseUrl is not set", ErrSetup)
	}
	u, err := parseHTTPSURL(c.BaseURL)
	if err != nil {
		return fmt.Errorf("%w: setup.baseUrl: %w", ErrSetup, err)
	}
	if c.DisplayName == "" {
		c.DisplayName = u.Hostname()
	}
	return nil
}

// setupIdentity applies setup on the first start (check verifies the upstream
// first) or compares it, and the key, with the stored one. It reports whether
// this was the first start.
func setupIdentity(ctx context.Context, state MirrorState, key *Key, setup SetupConfig, check func(context.Context) error, now time.Time) (Identity, bool, error) {
	if err := setup.validate(); err != nil {
		return Identity{}, false, err
	}
	stored, err := state.Identity(ctx)
	switch {
	case err == nil:
		if stored.Setup.BaseURL != setup.BaseURL {
			return Identity{}, false, &SetupChangedError{Property: "setup.baseUrl", Stored: stored.Setup.BaseURL, Given: setup.BaseURL}
		}
		if stored.Setup.UpstreamURL != setup.UpstreamURL {
			return Identity{}, false, &SetupChangedError{Property: "plugin.mirroring.upstream.url", Stored: stored.Setup.UpstreamURL, Given: setup.UpstreamURL}
		}
		if line := authorizedLine(key.PublicKey()); stored.PublicKey != "" && stored.PublicKey != line {
			where := ""
			if key.File != "" {
				where = " in " + key.File
			}
			return Identity{}, false, fmt.Errorf("mirror: the mirror key%s (%s) is not the key set up at the first start (%s); restore that key, or remove the mirror's home to set it up again",
				where, ssh.FingerprintSHA256(key.PublicKey()), fingerprints([]string{stored.PublicKey}))
		}
		return stored, false, nil
	case !isNotFound(err):
		return Identity{}, false, fmt.Errorf("mirror: read setup: %w", err)
	}
	if err := check(ctx); err != nil {
		return Identity{}, false, fmt.Errorf("mirror: setup refused: the upstream %s failed the HTTPS check: %w", setup.UpstreamURL, err)
	}
	id, err := newID()
	if err != nil {
		return Identity{}, false, err
	}
	ident := Identity{ID: id, Setup: setup, PublicKey: authorizedLine(key.PublicKey()), Created: now}
	if err := state.SetIdentity(ctx, ident); err != nil {
		return Identity{}, false, fmt.Errorf("mirror: store setup: %w", err)
	}
	return ident, true, nil
}
