package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/gitexec"
)

// StoreConfig configures OpenStore.
type StoreConfig struct {
	// Root is the directory that holds the repositories, normally
	// <home>/shared/data/repositories. It is created when missing. Required.
	Root string
	// Logger receives the store's log records; nil discards them.
	Logger *slog.Logger
	// EventBuffer is how many events a subscriber may fall behind before it is sent
	// EventGap and the backlog is dropped. Zero means 1024; negative is invalid.
	EventBuffer int
	// MaintenanceInterval is how often the store checks every repository and
	// repacks those over MaintainLoose loose objects or MaintainPacks packs (see
	// Maintain). Zero means DefaultMaintenanceInterval; negative turns the
	// background check off (Maintain can still be called).
	MaintenanceInterval time.Duration
	// MaintainLoose and MaintainPacks are the limits above which a repository is
	// repacked. Zero means DefaultMaintainLoose and DefaultMaintainPacks.
	MaintainLoose, MaintainPacks int

	// MaxPushOptions is how many push options (git push -o) one push may carry;
	// a push with more is refused, with a message to the client, before it
	// writes anything. Zero means DefaultMaxPushOptions; negative turns push
	// options off (receive-pack does not advertise them, and git's client then
	// refuses to push with -o).
	MaxPushOptions int
	// MaxPushOptionsBytes is how many bytes one push's options may hold in all,
	// enforced as MaxPushOptions is. Zero means DefaultMaxPushOptionsBytes;
	// negative is invalid.
	MaxPushOptionsBytes int
	// LFSMaxObjectSize is the largest Git LFS object the store accepts, in
	// bytes: a larger one is refused (413) before its data is read. Zero means
	// DefaultLFSMaxObjectSize; negative means no limit.
	LFSMaxObjectSize int64
	// LFSGracePeriod is how long maintenance keeps a Git LFS object that no ref
	// reaches (see Maintain). Zero means DefaultLFSGracePeriod; negative keeps
	// every object.
	LFSGracePeriod time.Duration
	// SignedPushKeyring is a GnuPG home directory (GNUPGHOME) holding the public
	// keys of those who may sign pushes (gpg --import is enough; gpg needs to
	// write its lock and trust files there): git verifies push certificates
	// (git push --signed) against it, and Event.Push.Cert reports the result.
	// Empty means no keyring: certificates are passed on unverified, with the
	// status git reports without the key ("E"), and a request with
	// RequireSignedPush is always refused.
	SignedPushKeyring string

	// PackCacheMaxBytes is the size limit of the pack cache on disk (see "Pack
	// cache" in the package documentation); a pack larger than it is served
	// without being kept. Zero means DefaultPackCacheMaxBytes (1 GiB); negative
	// turns the cache off, and upload-pack runs pack-objects itself.
	PackCacheMaxBytes int64
	// PackCacheMaxAge is how long a cached pack nobody asks for is kept. Zero
	// means DefaultPackCacheMaxAge (an hour); negative is invalid.
	PackCacheMaxAge time.Duration
	// PackCacheDir is where cached packs are kept. Empty means
	// <root>/.mesh/pack-cache. It must be on one file system.
	PackCacheDir string
	// MaxPackObjects is how many pack-objects runs for requests the cache cannot
	// answer may run at once in one repository; more wait in line. Zero means
	// the number of CPUs; negative means no limit.
	MaxPackObjects int
	// NoResponseCache turns off the pack cache's upper level, which keeps
	// upload-pack's whole answer to a protocol v2 fetch and serves an
	// identical request without git (see "Pack cache" in the package
	// documentation). The pack level stays.
	NoResponseCache bool
}

// Store is the in-process repository store: bare repositories under a root directory,
// laid out as <root>/<PROJECT>/<slug>.git, served by the git binary. It implements
// Repos and, through ServeGit, sshserve.GitBackend. A Store is safe for concurrent
// use; at most one Store should own a root at a time.
type Store struct {
	root  string
	tmp   string // <root>/.mesh/tmp: repositories being created, event spools, fetch keys
	trash string // <root>/.mesh/trash: repositories being deleted
	log   *slog.Logger
	locks lockTable
	// fetching and maintaining serialise the Fetches and the maintenance of each
	// repository (used as exclusive locks).
	fetching, maintaining        lockTable
	maintainLoose, maintainPacks int
	bus                          *bus
	refs                         refsCache  // refs of repositories with many, see refsCache
	projMu                       sync.Mutex // serialises creating and removing project directories

	maxPushOptions, maxPushOptionsBytes int
	signedPushKeyring                   string
	seedMu                              sync.Mutex
	seed                                string        // receive.certNonceSeed, once read or made (see certSeed)
	lfsMaxSize                          int64         // see StoreConfig.LFSMaxObjectSize; negative: no limit
	lfsGrace                            time.Duration // see StoreConfig.LFSGracePeriod; negative: keep all
	lfsMu                               sync.Mutex    // serialises changes to Git LFS lock files
	packs                               *packCache    // nil when off

	ctx    context.Context // ends at Close; every git process is started under it
	cancel context.CancelFunc
	wg     sync.WaitGroup // running operations and subscription goroutines

	mu        sync.Mutex
	closed    bool
	lockState map[string]*repoLocks // see clearStaleLocks
}

var _ Repos = (*Store)(nil)

// metaDir is the store's private directory inside the root. Its name cannot be a
// project key, so it never collides with a repository.
const metaDir = ".mesh"

// OpenStore opens (creating when needed) the store rooted at cfg.Root. It checks that
// git >= 2.31 is installed and removes debris left by an earlier crash.
func OpenStore(ctx context.Context, cfg StoreConfig) (*Store, error) {
	if cfg.Root == "" {
		return nil, errors.New("mesh: StoreConfig.Root is required")
	}
	if cfg.EventBuffer < 0 {
		return nil, fmt.Errorf("mesh: StoreConfig.EventBuffer %d is negative", cfg.EventBuffer)
	}
	if cfg.MaxPushOptionsBytes < 0 {
		return nil, fmt.Errorf("mesh: StoreConfig.MaxPushOptionsBytes %d is negative", cfg.MaxPushOptionsBytes)
	}
	var keyring string
	if cfg.SignedPushKeyring != "" {
		var err error
		if keyring, err = filepath.Abs(cfg.SignedPushKeyring); err != nil {
			return nil, fmt.Errorf("mesh: StoreConfig.SignedPushKeyring: %w", err)
		}
		if fi, err := os.Stat(keyring); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("mesh: StoreConfig.SignedPushKeyring %s is not a directory", keyring)
		}
	}
	if _, err := gitexec.CheckVersion(ctx); err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("mesh: store root: %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("mesh: store root: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		root:  root,
		tmp:   filepath.Join(root, metaDir, "tmp"),
		trash: filepath.Join(root, metaDir, "trash"),
		log:   logger,
	}
	buf := cfg.EventBuffer
	if buf == 0 {
		buf = 1024
	}
	s.bus = newBus(buf)
	// Whatever is in tmp or trash belongs to an earlier process that stopped halfway.
	for _, d := range []string{s.tmp, s.trash} {
		if err := os.RemoveAll(d); err != nil {
			return nil, fmt.Errorf("mesh: clean %s: %w", d, err)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("mesh: %w", err)
		}
	}
	hooks := filepath.Join(root, metaDir, receiveHooksDir)
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	if err := writeHooks(hooks, receiveHooks()); err != nil {
		return nil, fmt.Errorf("mesh: receive-pack hooks: %w", err)
	}
	s.maintainLoose, s.maintainPacks = cfg.MaintainLoose, cfg.MaintainPacks
	s.maxPushOptions, s.maxPushOptionsBytes = cfg.MaxPushOptions, cfg.MaxPushOptionsBytes
	if s.maxPushOptions == 0 {
		s.maxPushOptions = DefaultMaxPushOptions
	}
	if s.maxPushOptionsBytes == 0 {
		s.maxPushOptionsBytes = DefaultMaxPushOptionsBytes
	}
	s.signedPushKeyring = keyring
	s.lfsMaxSize = cfg.LFSMaxObjectSize
	if s.lfsMaxSize == 0 {
		s.lfsMaxSize = DefaultLFSMaxObjectSize
	}
	s.lfsGrace = cfg.LFSGracePeriod
	if s.lfsGrace == 0 {
		s.lfsGrace = DefaultLFSGracePeriod
	}
	if cfg.PackCacheMaxAge < 0 {
		return nil, fmt.Errorf("mesh: StoreConfig.PackCacheMaxAge %v is negative", cfg.PackCacheMaxAge)
	}
	if s.packs, err = openPackCache(ctx, s, cfg); err != nil {
		return nil, fmt.Errorf("mesh: pack cache: %w", err)
	}
	if s.maintainLoose <= 0 {
		s.maintainLoose = DefaultMaintainLoose
	}
	if s.maintainPacks <= 0 {
		s.maintainPacks = DefaultMaintainPacks
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if interval := cfg.MaintenanceInterval; interval >= 0 {
		if interval == 0 {
			interval = DefaultMaintenanceInterval
		}
		s.wg.Add(1)
		go s.maintainLoop(interval)
	}
	return s, nil
}

// Root returns the absolute directory the store keeps its repositories in.
func (s *Store) Root() string { return s.root }

// Close stops the store: later calls fail with ErrClosed, running git processes are
// killed, and subscription channels are closed. It waits for all of that to finish.
// Close is safe to call more than once.
func (s *Store) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	if !already {
		s.cancel()
		s.bus.close()
	}
	s.wg.Wait()
	return nil
}

// begin registers a running operation; it fails with ErrClosed after Close. The
// returned context ends when either ctx or the store ends.
func (s *Store) begin(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	s.wg.Add(1)
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel(); s.wg.Done() }, nil
}

func repoKey(project, slug string) string { return project + "/" + slug }

// repoDir returns the directory of a (normalised) repository.
func (s *Store) repoDir(project, slug string) string {
	return filepath.Join(s.root, project, slug+".git")
}

// present reports whether the repository's directory exists as a real directory.
// Symbolic links planted in the root are never followed: a repository or project
// that is a symlink does not exist as far as the store is concerned.
func (s *Store) present(project, slug string) (bool, error) {
	for _, p := range []string{filepath.Join(s.root, project), s.repoDir(project, slug)} {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("mesh: %w", err)
		}
		if !fi.IsDir() {
			if fi.Mode()&fs.ModeSymlink != 0 {
				s.log.Warn("mesh: ignoring symbolic link in the store root", "path", p)
			}
			return false, nil
		}
	}
	return true, nil
}

// openRepo normalises the names and checks that the repository exists.
func (s *Store) openRepo(project, slug string) (p, sl, dir string, err error) {
	p, sl, err = repoName(project, slug)
	if err != nil {
		return "", "", "", err
	}
	ok, err := s.present(p, sl)
	if err != nil {
		return "", "", "", err
	}
	if !ok {
		return "", "", "", fmt.Errorf("%w: %s/%s", ErrNotFound, p, sl)
	}
	return p, sl, s.repoDir(p, sl), nil
}

// Create creates an empty bare repository with HEAD pointing at main, the store's
// configuration and its event hook.
func (s *Store) Create(ctx context.Context, project, slug string) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	p, sl, err := repoName(project, slug)
	if err != nil {
		return err
	}
	lock := s.locks.get(repoKey(p, sl))
	if err := lock.Lock(ctx); err != nil {
		return err
	}
	defer lock.Unlock()
	return s.createLocked(p, sl)
}

// createLocked creates the repository; the caller holds its write lock.
func (s *Store) createLocked(project, slug string) error {
	ok, err := s.present(project, slug)
	if err != nil {
		return err
	}
	if ok {
		return fmt.Errorf("%w: %s/%s", ErrExists, project, slug)
	}
	s.refs.drop(repoKey(project, slug))
	staged, err := os.MkdirTemp(s.tmp, "create-")
	if err != nil {
		return fmt.Errorf("mesh: create: %w", err)
	}
	defer os.RemoveAll(staged) // a no-op once renamed into place
	if err := os.Chmod(staged, 0o755); err != nil {
		return fmt.Errorf("mesh: create: %w", err)
	}
	if err := writeSkeleton(staged); err != nil {
		return fmt.Errorf("mesh: create %s/%s: %w", project, slug, err)
	}
	s.projMu.Lock()
	defer s.projMu.Unlock()
	pdir := filepath.Join(s.root, project)
	if err := os.Mkdir(pdir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("mesh: create: %w", err)
	}
	if fi, err := os.Lstat(pdir); err != nil || !fi.IsDir() {
		return fmt.Errorf("mesh: create %s/%s: project path is not a directory", project, slug)
	}
	if err := os.Rename(staged, s.repoDir(project, slug)); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s/%s", ErrExists, project, slug)
		}
		return fmt.Errorf("mesh: create: %w", err)
	}
	s.log.Info("mesh: repository created", "project", project, "slug", slug)
	s.bus.publish(Event{Type: EventCreated, Project: project, Slug: slug})
	return nil
}

// repoConfig is the configuration of every repository. Automatic gc is off because
// git 2.39 runs the reference-transaction hook for pack-refs' internal transactions,
// which would report refs as deleted and re-created; maintenance is the store's job
// (see Maintain).
const repoConfig = `[core]
	repositoryformatversion = 0
	filemode = true
	bare = true
	logallrefupdates = false
[receive]
	fsckObjects = true
	autogc = false
[uploadpack]
	allowFilter = true
	allowAnySHA1InWant = false
[gc]
	auto = 0
[maintenance]
	auto = false
`

// writeSkeleton writes the files of an empty bare repository into dir.
func writeSkeleton(dir string) error {
	for _, d := range []string{"objects/info", "objects/pack", "refs/heads", "refs/tags", "hooks", "info"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	files := []struct {
		name string
		data string
		mode os.FileMode
	}{
		{"HEAD", "ref: refs/heads/main\n", 0o644},
		{"config", repoConfig, 0o644},
		{"description", "gitfleet repository\n", 0o644},
	}
	for _, h := range repoHooks() {
		files = append(files, struct {
			name string
			data string
			mode os.FileMode
		}{"hooks/" + h.name, h.script, 0o755})
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes a repository: it is renamed out of the way while its write lock is
// held, so no git process starts on it afterwards, and then removed.
func (s *Store) Delete(ctx context.Context, project, slug string) error {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	p, sl, err := repoName(project, slug)
	if err != nil {
		return err
	}
	lock := s.locks.get(repoKey(p, sl))
	if err := lock.Lock(ctx); err != nil {
		return err
	}
	p, sl, dir, err := s.openRepo(p, sl)
	if err != nil {
		lock.Unlock()
		return err
	}
	gone, err := os.MkdirTemp(s.trash, "delete-")
	if err == nil {
		err = os.Rename(dir, filepath.Join(gone, "repo.git"))
	}
	if err != nil {
		lock.Unlock()
		return fmt.Errorf("mesh: delete %s/%s: %w", p, sl, err)
	}
	s.refs.drop(repoKey(p, sl))
	s.bus.publish(Event{Type: EventDeleted, Project: p, Slug: sl})
	lock.Unlock()
	s.log.Info("mesh: repository deleted", "project", p, "slug", sl)
	s.projMu.Lock()
	_ = os.Remove(filepath.Join(s.root, p)) // only succeeds when the project is now empty
	s.projMu.Unlock()
	if err := os.RemoveAll(gone); err != nil {
		s.log.Warn("mesh: removing deleted repository", "path", gone, "err", err)
	}
	if s.packs != nil {
		s.packs.dropRepo(p, sl)
	}
	return nil
}

// List returns every repository, sorted by project then slug. Entries that are not
// valid repositories (bad names, symbolic links, stray files) are skipped.
func (s *Store) List(ctx context.Context) ([]RepoInfo, error) {
	_, done, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	projects, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("mesh: list: %w", err)
	}
	var out []RepoInfo
	for _, pe := range projects {
		if !pe.IsDir() || pe.Type()&fs.ModeSymlink != 0 {
			continue
		}
		if p, err := gitfleet.NormalizeProjectKey(pe.Name()); err != nil || p != pe.Name() {
			continue
		}
		repos, err := os.ReadDir(filepath.Join(s.root, pe.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			return nil, fmt.Errorf("mesh: list: %w", err)
		}
		for _, re := range repos {
			name, ok := strings.CutSuffix(re.Name(), ".git")
			if !ok || !re.IsDir() || re.Type()&fs.ModeSymlink != 0 {
				continue
			}
			if sl, err := gitfleet.NormalizeSlug(name); err != nil || sl != name {
				continue
			}
			out = append(out, RepoInfo{Project: pe.Name(), Slug: name})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Project != out[j].Project {
			return out[i].Project < out[j].Project
		}
		return out[i].Slug < out[j].Slug
	})
	return out, nil
}

// Exists reports whether the repository exists.
func (s *Store) Exists(ctx context.Context, project, slug string) (bool, error) {
	_, done, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer done()
	p, sl, err := repoName(project, slug)
	if err != nil {
		return false, err
	}
	return s.present(p, sl)
}

// spool creates an empty file for a git process's reference-transaction hook to
// append to, and returns its path.
func (s *Store) spool() (string, error) {
	f, err := os.CreateTemp(s.tmp, "events-")
	if err != nil {
		return "", fmt.Errorf("mesh: %w", err)
	}
	return f.Name(), f.Close()
}

// collect reads and removes a spool file and publishes its transactions (see
// collectFrom). It returns all the updates.
func (s *Store) collect(project, slug, path string, before map[string]string) []RefUpdate {
	var all []RefUpdate
	s.collectUpdates(project, slug, path, 0, before, nil, &all)
	os.Remove(path)
	return all
}

// collectFrom publishes the transactions a spool file holds from offset on, each
// event carrying push (may be nil), and returns the offset of its end.
func (s *Store) collectFrom(project, slug, path string, offset int64, before map[string]string, push *PushInfo) int64 {
	return s.collectUpdates(project, slug, path, offset, before, push, nil)
}

// collectUpdates publishes one EventRefsChanged per committed transaction in a
// spool file from offset on, in order (see resolveTransactions; before may be nil),
// with Push set to push (a push's options and certificate, or nil), appending
// the updates to all when it is not nil. The caller holds the repository's write
// lock, which keeps events of one repository in commit order.
func (s *Store) collectUpdates(project, slug, path string, offset int64, before map[string]string, push *PushInfo, all *[]RefUpdate) int64 {
	f, err := os.Open(path)
	if err != nil {
		s.log.Error("mesh: reading ref transactions", "err", err)
		s.refs.drop(repoKey(project, slug))
		s.bus.publish(Event{Type: EventGap, Project: project, Slug: slug})
		return offset
	}
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<30))
	if err != nil {
		s.log.Error("mesh: reading ref transactions", "err", err)
		s.refs.drop(repoKey(project, slug))
		s.bus.publish(Event{Type: EventGap, Project: project, Slug: slug})
		return offset
	}
	raw, complete := parseTransactions(bytes.NewReader(data))
	txns, unresolved := resolveTransactions(raw, before)
	s.refs.apply(repoKey(project, slug), txns, complete && !unresolved)
	for _, u := range txns {
		s.bus.publish(Event{Type: EventRefsChanged, Project: project, Slug: slug, Updates: u, Push: push})
		if all != nil {
			*all = append(*all, u...)
		}
	}
	if !complete || unresolved {
		s.log.Warn("mesh: a ref transaction report was incomplete; subscribers must resync", "project", project, "slug", slug)
		s.bus.publish(Event{Type: EventGap, Project: project, Slug: slug})
	}
	return offset + int64(len(data))
}
