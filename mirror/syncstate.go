package mirror

import (
	"context"
	"time"

	"github.com/gitfleet/gitfleet"
)

// The syncer's durable state goes through Config.State; a failed write is
// logged and sync goes on (the next reconcile compares refs hashes anyway).

// loadCursor returns the stored change-feed cursor (0 when none).
func (m *Mirror) loadCursor() uint64 {
	c, err := m.cfg.State.Cursor(context.Background())
	if err != nil {
		m.log.Error("read change-feed cursor", "err", err)
	}
	return c
}

// saveCursor stores the change-feed cursor.
func (m *Mirror) saveCursor(c uint64) {
	if err := m.cfg.State.SetCursor(context.Background(), c); err != nil {
		m.log.Error("store change-feed cursor", "err", err)
	}
}

// saveRepo records a successful sync of repo.
func (m *Mirror) saveRepo(repo gitfleet.RepoName, at time.Time) {
	if err := m.cfg.State.SetRepoSync(context.Background(), repo, at); err != nil {
		m.log.Error("store repository sync state", "repo", repo.String(), "err", err)
	}
}

// forgetRepo removes the stored state of repo.
func (m *Mirror) forgetRepo(repo gitfleet.RepoName) {
	if err := m.cfg.State.DeleteRepoSync(context.Background(), repo); err != nil {
		m.log.Error("forget repository sync state", "repo", repo.String(), "err", err)
	}
}

// loadRepoStates returns the stored last-sync times.
func (m *Mirror) loadRepoStates() map[gitfleet.RepoName]time.Time {
	out, err := m.cfg.State.RepoSyncs(context.Background())
	if err != nil {
		m.log.Error("read repository sync state", "err", err)
	}
	return out
}
