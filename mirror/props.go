package mirror

import (
	"errors"
	"fmt"
	"time"

	"github.com/gitfleet/gitfleet/props"
)

// ErrNotMirrorMode is returned by SetupFromProps for a node whose
// application.mode is not "mirror".
var ErrNotMirrorMode = errors.New("mirror: application.mode is not mirror")

// SetupFromProps returns the mirror setup and sync interval from a node's typed
// configuration: setup.displayName, setup.baseUrl, plugin.mirroring.upstream.url,
// plugin.mirroring.upstream.type and plugin.mirroring.synchronization.interval.
func SetupFromProps(c *props.Config) (SetupConfig, time.Duration, error) {
	if c.Mode != props.ModeMirror {
		return SetupConfig{}, 0, fmt.Errorf("%w (it is %q)", ErrNotMirrorMode, c.Mode)
	}
	return SetupConfig{
		DisplayName:  c.Setup.DisplayName,
		BaseURL:      c.Setup.BaseURL,
		UpstreamURL:  c.Mirroring.UpstreamURL,
		UpstreamType: c.Mirroring.UpstreamType,
	}, c.Mirroring.SyncInterval, nil
}
