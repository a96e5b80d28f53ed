package mesh

// SetPackCacheWriteFailure makes every write to the store's pack cache fail
// with err (nil: writes work again), as a full disk would.
func SetPackCacheWriteFailure(s *Store, err error) {
	s.packs.mu.Lock()
	defer s.packs.mu.Unlock()
	if err == nil {
		s.packs.failWrite = nil
		return
	}
	s.packs.failWrite = func() error { return err }
}

// PackCacheDir returns the directory the store keeps cached packs in.
func PackCacheDir(s *Store) string { return s.packs.dir }

// PackObjectsPeak returns the most pack-objects runs the cache has seen at once.
func PackObjectsPeak(s *Store) int64 { return s.packs.peak.Load() }
