package mirror

import (
	"slices"
	"time"
)

// Status is a snapshot of a mirror's state, for display and health checks.
type Status struct {
	ID          string
	Name        string
	BaseURL     string
	UpstreamURL string
	// State is StateUnregistered until the upstream answered the registration,
	// then PENDING, ACCEPTED, REJECTED or REMOVED.
	State State
	// Mode and Projects are what the upstream grants an accepted mirror.
	Mode     Mode
	Projects []string
	// SSHBaseURL is where the mirror fetches from.
	SSHBaseURL string
	// PinnedHostKeys are the upstream's SSH host keys pinned at acceptance.
	PinnedHostKeys []string
	// HostKeyChanged is set when the upstream offers other host keys; sync is
	// stopped until Mirror.TrustHostKeys.
	HostKeyChanged bool
	// LastContact is when the upstream last answered.
	LastContact time.Time
	// LastError is the latest registration or sync error, empty when the last
	// attempt succeeded.
	LastError string
	// Sync describes repository synchronisation.
	Sync SyncStatus
}

// Status returns a snapshot of the mirror's state.
func (m *Mirror) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{
		ID:             m.ident.ID,
		Name:           m.ident.Setup.DisplayName,
		BaseURL:        m.ident.Setup.BaseURL,
		UpstreamURL:    m.ident.Setup.UpstreamURL,
		State:          m.reg.State,
		Mode:           m.reg.Mode,
		Projects:       slices.Clone(m.reg.Projects),
		SSHBaseURL:     m.reg.SSHBaseURL,
		PinnedHostKeys: slices.Clone(m.reg.HostKeys),
		HostKeyChanged: len(m.reg.KeyChanged) > 0,
		LastContact:    m.contact,
		LastError:      m.lastErr,
	}
	if m.sync != nil {
		s.Sync = m.sync.status()
		if s.Sync.Halted != "" {
			s.LastError = s.Sync.Halted
		}
	}
	return s
}
