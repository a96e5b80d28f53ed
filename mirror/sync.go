package mirror

// SyncStatus describes repository synchronisation.
type SyncStatus struct{}

// syncer keeps the mirror's repositories in sync with the upstream.
type syncer struct{}

func (s *syncer) status() SyncStatus { return SyncStatus{} }

func (m *Mirror) startSync() {}
func (m *Mirror) stopSync()  {}
