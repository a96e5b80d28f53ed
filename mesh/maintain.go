package mesh

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet/internal/gitexec"
)

// Maintenance defaults: git's own thresholds for automatic gc (gc.auto and
// gc.autoPackLimit), and how often the store looks.
const (
	DefaultMaintenanceInterval = time.Hour
	DefaultMaintainLoose       = 6700
	DefaultMaintainPacks       = 50
)

// MaintainResult reports what Maintain found and did.
type MaintainResult struct {
	LooseBefore int  // loose objects before
	PacksBefore int  // packs before
	Repacked    bool // the repository was repacked
	LooseAfter  int
	PacksAfter  int
	LFSRemoved  int // Git LFS objects removed: no ref reaches them, older than the grace period
}

// Maintain repacks project/slug into one pack with a reachability bitmap when it
// has more loose objects or packs than the store's limits (StoreConfig), or always
// when force is set. Automatic gc is off in stored repositories (see the package
// documentation), so this is how they stay fast: pushes and mirror fetches leave
// loose objects and small packs behind.
//
// It takes no repository lock, so clones and pushes go on meanwhile; git's repack
// is safe against them. Nothing is ever deleted that a ref might still need:
// `repack -A -d` turns unreachable packed objects into loose ones instead of
// dropping them (a fetch moves its objects in before it sets its refs), and
// `prune-packed` removes only loose objects that are now in a pack. Refs are not
// packed (pack-refs would report its internal transactions as ref changes).
// Maintenance of one repository runs one at a time.
//
// It also removes the repository's Git LFS objects that no ref reaches once
// nobody has uploaded, announced or checked them for StoreConfig.LFSGracePeriod
// (24 hours by default), never while a push runs there (see lfsGC).
func (s *Store) Maintain(ctx context.Context, project, slug string, force bool) (MaintainResult, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return MaintainResult{}, err
	}
	defer done()
	p, sl, err := repoName(project, slug)
	if err != nil {
		return MaintainResult{}, err
	}
	one := s.maintaining.get(repoKey(p, sl))
	if err := one.Lock(ctx); err != nil {
		return MaintainResult{}, err
	}
	defer one.Unlock()
	if ok, err := s.present(p, sl); err != nil {
		return MaintainResult{}, err
	} else if !ok {
		return MaintainResult{}, fmt.Errorf("%w: %s/%s", ErrNotFound, p, sl)
	}
	dir := s.repoDir(p, sl)
	var res MaintainResult
	if res.LFSRemoved, err = s.lfsGC(ctx, p, sl, dir); err != nil {
		s.log.Warn("mesh: lfs maintenance", "project", p, "slug", sl, "err", err)
	}
	res.LooseBefore, res.PacksBefore = countObjects(dir)
	if !force && res.LooseBefore <= s.maintainLoose && res.PacksBefore <= s.maintainPacks {
		res.LooseAfter, res.PacksAfter = res.LooseBefore, res.PacksBefore
		return res, nil
	}
	start := time.Now()
	for _, args := range [][]string{
		{"-c", "pack.writeBitmapHashCache=true", "repack", "-A", "-d", "-l", "-q", "--write-bitmap-index"},
		{"prune-packed", "-q"},
	} {
		cmd := s.gitCommand(ctx, dir, nil, args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return res, fmt.Errorf("mesh: maintain %s/%s: %w", p, sl, gitexec.Wrap(args, err, strings.TrimSpace(stderr.String())))
		}
	}
	res.Repacked = true
	res.LooseAfter, res.PacksAfter = countObjects(dir)
	s.log.Info("mesh: repository maintained", "project", p, "slug", sl,
		"loose_before", res.LooseBefore, "packs_before", res.PacksBefore,
		"loose_after", res.LooseAfter, "packs_after", res.PacksAfter, "duration", time.Since(start))
	return res, nil
}

// countObjects counts a repository's loose objects and packs.
func countObjects(dir string) (loose, packs int) {
	objects := filepath.Join(dir, "objects")
	entries, _ := os.ReadDir(objects)
	for _, e := range entries {
		if n := e.Name(); e.IsDir() && len(n) == 2 && isHex(n) {
			files, _ := os.ReadDir(filepath.Join(objects, n))
			for _, f := range files {
				if !strings.HasPrefix(f.Name(), "tmp_") {
					loose++
				}
			}
		}
	}
	idx, _ := filepath.Glob(filepath.Join(objects, "pack", "pack-*.idx"))
	return loose, len(idx)
}

// maintainLoop maintains every repository that needs it, every interval, until the
// store closes.
func (s *Store) maintainLoop(interval time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		repos, err := s.List(s.ctx)
		if err != nil {
			continue
		}
		for _, r := range repos {
			if _, err := s.Maintain(s.ctx, r.Project, r.Slug, false); err != nil && s.ctx.Err() == nil {
				s.log.Warn("mesh: maintenance failed", "project", r.Project, "slug", r.Slug, "err", err)
			}
		}
	}
}
