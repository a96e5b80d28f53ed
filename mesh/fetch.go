package mesh

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet/internal/gitexec"
)

// DefaultFetchTimeout bounds a Fetch whose options give no Timeout.
const DefaultFetchTimeout = 10 * time.Minute

// Fetch mirrors a remote repository into project/slug, creating it when missing,
// over ssh with only opts.PrivateKey and strict checking against opts.KnownHosts
// (written to a private temporary directory and removed afterwards). It works in
// two phases. Without any lock, one `git fetch +refs/*:refs/*` (or, for a first
// sync, `git clone --mirror`) brings the remote's refs into a staging repository
// that borrows the repository's objects (objects/info/alternates), so only what the
// repository lacks crosses the network and git checks the new objects'
// connectivity; clones are not held up by the transfer, and nothing they read
// changes. Then, under the repository's write lock, the repository is created if
// it is new (so a failed first fetch leaves none behind), the new objects move in
// (a pack's index last, so no reader sees an index without its pack), and one
// `git update-ref --stdin` transaction sets
// every ref to the staged value and deletes the refs the remote no longer has,
// each checked against its value read under the lock. Fetches of one repository
// run one at a time, so a slower fetch never commits an older state over a newer
// one. Progress is parsed from git's --progress output. The result lists exactly
// the ref updates committed, which are also published as events.
func (s *Store) Fetch(ctx context.Context, project, slug string, opts FetchOptions) (FetchResult, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return FetchResult{}, err
	}
	defer done()
	p, sl, err := repoName(project, slug)
	if err != nil {
		return FetchResult{}, err
	}
	if err := checkFetchURL(opts.URL); err != nil {
		return FetchResult{}, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	one := s.fetching.get(repoKey(p, sl))
	if err := one.Lock(ctx); err != nil {
		return FetchResult{}, err
	}
	defer one.Unlock()

	secrets, err := os.MkdirTemp(s.tmp, "fetch-")
	if err != nil {
		return FetchResult{}, fmt.Errorf("mesh: fetch: %w", err)
	}
	defer os.RemoveAll(secrets)
	sshCmd, err := writeSSHFiles(secrets, opts)
	if err != nil {
		return FetchResult{}, fmt.Errorf("mesh: fetch: %w", err)
	}

	netEnv := []string{
		"GIT_SSH_COMMAND=" + sshCmd,
		"GIT_SSH_VARIANT=ssh",
		"GIT_ALLOW_PROTOCOL=ssh:file:https",
	}
	var res FetchResult
	lock := s.locks.get(repoKey(p, sl))
	if err := lock.RLock(ctx); err != nil {
		return res, err
	}
	existed, err := s.present(p, sl)
	lock.RUnlock()
	if err != nil {
		return res, err
	}
	dir := s.repoDir(p, sl)
	prog := &progressParser{report: opts.Progress}

	// Phase 1, without the lock: the remote's refs into the staging repository.
	// Nothing in the repository changes, and a repository that did not exist is
	// created only once this has succeeded: a failed first fetch leaves no empty
	// repository behind for clients to clone.
	stage, get, err := stageCommand(secrets, dir, opts.URL, existed)
	if err != nil {
		return res, fmt.Errorf("mesh: fetch: %w", err)
	}
	cmd := s.gitCommand(ctx, secrets, netEnv, get...)
	cmd.Stderr = prog
	if err := cmd.Run(); err != nil {
		return res, fetchError(ctx, opts.URL, get, err, prog)
	}
	remote, err := readRefs(stage)
	if err != nil {
		return res, fmt.Errorf("mesh: fetch: staged refs: %w", err)
	}
	if !opts.SkipLFS {
		// The LFS objects the new commits point to, into the staging repository:
		// they move in with the git objects, before any ref changes.
		tips := uniqueIDs(remote)
		var exclude []string
		if existed && !opts.LFSAll {
			if have, err := readRefs(dir); err == nil {
				exclude = uniqueIDs(have)
			}
		}
		want, err := s.lfsPointers(ctx, stage, tips, exclude)
		if err != nil {
			return res, fmt.Errorf("%w: finding pointers: %v", ErrLFS, err)
		}
		if res.LFSObjects, err = s.fetchLFS(ctx, dir, stage, opts.URL, sshCmd, want); err != nil {
			return res, err
		}
	}

	// Phase 2, under the write lock: create the repository if it is new, move the
	// new objects in (renames; a pack's index last, so a reader finds the whole
	// pack or none of it), then one transaction for every ref that differs.
	if err := lock.Lock(ctx); err != nil {
		return res, err
	}
	defer lock.Unlock()
	ok, err := s.present(p, sl)
	switch {
	case err != nil:
		return res, err
	case !ok && existed:
		return res, fmt.Errorf("%w: %s/%s was deleted during the fetch", ErrNotFound, p, sl)
	case !ok:
		if err := s.createLocked(p, sl); err != nil {
			return res, err
		}
		res.Created = true
	}
	if err := moveObjects(filepath.Join(stage, "objects"), filepath.Join(dir, "objects")); err != nil {
		return res, fmt.Errorf("mesh: fetch: %w", err)
	}
	if err := moveLFSObjects(stage, dir); err != nil {
		return res, fmt.Errorf("%w: %v", ErrLFS, err)
	}
	s.clearStaleLocks(p, sl)
	before, err := readRefs(dir)
	if err != nil {
		return res, fmt.Errorf("mesh: fetch: %w", err)
	}
	script := refTransaction(before, remote)
	if script != "" {
		spool, err := s.spool()
		if err != nil {
			return res, err
		}
		defer os.Remove(spool)
		args := []string{"update-ref", "--stdin"}
		cmd = s.gitCommand(ctx, dir, []string{eventsEnv + "=" + spool}, args...)
		cmd.Stdin = strings.NewReader(script)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		runErr := cmd.Run()
		res.Updates = s.collect(p, sl, spool, before)
		sort.Slice(res.Updates, func(i, j int) bool { return res.Updates[i].Ref < res.Updates[j].Ref })
		if runErr != nil {
			return res, fmt.Errorf("%w: %s: %w", ErrFetch, opts.URL, gitexec.Wrap(args, runErr, stderr.String()))
		}
	}
	s.log.Info("mesh: fetched", "project", p, "slug", sl, "url", opts.URL, "updates", len(res.Updates), "lfsObjects", res.LFSObjects)
	return res, nil
}

// uniqueIDs returns the distinct values of refs.
func uniqueIDs(refs map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, id := range refs {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// stageCommand returns the staging repository "stage.git" in parent, whose object
// store falls back on the repository at dir's (objects/info/alternates), and the git
// arguments (run in parent) that bring the remote's refs into it: a fetch into it
// negotiates with dir's refs as haves and stores only the objects dir lacks. While
// dir has no refs (a first sync) or does not exist yet, the staging repository is
// made by `git clone --mirror` (with --reference dir when dir exists) instead:
// clone's index-pack verifies that the pack is self-contained and connected as it
// indexes it, which spares the separate connectivity walk a fetch makes over every
// object (a seventh of a first sync's local work for 40,000 objects). Later
// fetches leave few objects loose, as git does, instead of a pack per fetch.
func stageCommand(parent, dir, url string, exists bool) (stage string, args []string, err error) {
	stage = filepath.Join(parent, "stage.git")
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	clone := []string{"-c", "fetch.writeCommitGraph=false", "clone", "--mirror", "--no-local", "--template=", "--progress"}
	if !exists {
		return stage, append(clone, "--", url, stage), nil
	}
	if have, err := readRefs(dir); err == nil && len(have) == 0 {
		return stage, append(clone, "--reference", dir, "--", url, stage), nil
	}
	for _, d := range []string{"refs/heads", "refs/tags", "objects/info", "objects/pack"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return "", nil, err
		}
	}
	files := map[string]string{
		"HEAD":                    "ref: refs/heads/main\n",
		"config":                  "[core]\n\trepositoryformatversion = 0\n\tbare = true\n\tlogallrefupdates = false\n[gc]\n\tauto = 0\n",
		"objects/info/alternates": filepath.Join(dir, "objects") + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(stage, name), []byte(content), 0o644); err != nil {
			return "", nil, err
		}
	}
	return stage, []string{"--git-dir=" + stage, "-c", "fetch.writeCommitGraph=false", "fetch", "--progress",
		"--no-write-fetch-head", "--no-auto-gc", "--", url, "+refs/*:refs/*"}, nil
}

// moveObjects moves the objects a fetch stored in from (loose objects and packs)
// into the object directory to, on the same file system. Of a pack, the index moves
// last: git uses a pack only through its index, so a reader finds either nothing
// or the whole pack. Objects to already has are left in place (and removed with from).
func moveObjects(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || len(name) != 2 || !isHex(name) {
			continue
		}
		objs, err := os.ReadDir(filepath.Join(from, name))
		if err != nil {
			return err
		}
		if len(objs) == 0 {
			continue
		}
		if err := os.MkdirAll(filepath.Join(to, name), 0o755); err != nil {
			return err
		}
		for _, o := range objs {
			if strings.HasPrefix(o.Name(), "tmp_") {
				continue
			}
			dst := filepath.Join(to, name, o.Name())
			if _, err := os.Lstat(dst); err == nil {
				continue
			}
			if err := os.Rename(filepath.Join(from, name, o.Name()), dst); err != nil {
				return err
			}
		}
	}
	packs, err := os.ReadDir(filepath.Join(from, "pack"))
	if err != nil {
		return err
	}
	var names []string
	for _, e := range packs {
		if n := e.Name(); strings.HasPrefix(n, "pack-") && packFileRank(n) >= 0 {
			names = append(names, n)
		}
	}
	sort.SliceStable(names, func(i, j int) bool { return packFileRank(names[i]) < packFileRank(names[j]) })
	for _, n := range names {
		dst := filepath.Join(to, "pack", n)
		if _, err := os.Lstat(dst); err == nil {
			continue // the same pack (same name, same content) is already there
		}
		if err := os.Rename(filepath.Join(from, "pack", n), dst); err != nil {
			return err
		}
	}
	return nil
}

// packFileRank orders the files of a pack for moving, the index last; -1 for
// files that stay behind (.keep marks a pack being written, tmp_ files are partial).
func packFileRank(name string) int {
	switch filepath.Ext(name) {
	case ".pack":
		return 0
	case ".rev", ".bitmap", ".promisor", ".mtimes":
		return 1
	case ".idx":
		return 2
	}
	return -1
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// refTransaction returns the `git update-ref --stdin` input that turns the refs
// before into the refs after, each update checked against its old value (a zero id
// for a ref that must not exist yet), sorted by ref name; "" when they are equal.
func refTransaction(before, after map[string]string) string {
	var lines []string
	for ref, id := range after {
		old, ok := before[ref]
		switch {
		case !ok:
			lines = append(lines, "update "+ref+" "+id+" "+strings.Repeat("0", len(id)))
		case old != id:
			lines = append(lines, "update "+ref+" "+id+" "+old)
		}
	}
	for ref, old := range before {
		if _, ok := after[ref]; !ok {
			lines = append(lines, "delete "+ref+" "+old)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	sort.Slice(lines, func(i, j int) bool { return refOf(lines[i]) < refOf(lines[j]) })
	return strings.Join(lines, "\n") + "\n"
}

func refOf(line string) string {
	_, rest, _ := strings.Cut(line, " ")
	ref, _, _ := strings.Cut(rest, " ")
	return ref
}

// fetchError classifies a failed git command of a Fetch.
func fetchError(ctx context.Context, url string, args []string, err error, prog *progressParser) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s: %w", ErrFetch, url, ctx.Err())
	}
	tail := prog.stderrTail()
	if strings.Contains(tail, "Host key verification failed") {
		return fmt.Errorf("%w: %w: %s: %w", ErrFetch, ErrHostKey, url, gitexec.Wrap(args, err, tail))
	}
	return fmt.Errorf("%w: %s: %w", ErrFetch, url, gitexec.Wrap(args, err, tail))
}

// checkFetchURL refuses URLs git would read as an option or that use a transport
// other than ssh, file or https.
func checkFetchURL(u string) error {
	if u == "" || strings.HasPrefix(u, "-") || strings.ContainsAny(u, "\x00\n\r") {
		return fmt.Errorf("%w: invalid remote URL %q", ErrFetch, u)
	}
	if strings.Contains(u, "::") {
		return fmt.Errorf("%w: remote helpers are not allowed: %q", ErrFetch, u)
	}
	return nil
}

// writeSSHFiles writes the private key (mode 0600) and known_hosts into dir and
// returns the GIT_SSH_COMMAND that uses exactly them.
func writeSSHFiles(dir string, opts FetchOptions) (string, error) {
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, opts.KnownHosts, 0o600); err != nil {
		return "", err
	}
	args := []string{"ssh", "-F", "/dev/null",
		"-o", "UserKnownHostsFile=" + kh,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "ConnectTimeout=30",
	}
	if len(opts.PrivateKey) > 0 {
		key := filepath.Join(dir, "id")
		data := opts.PrivateKey
		if !bytes.HasSuffix(data, []byte("\n")) {
			data = append(append([]byte(nil), data...), '\n') // OpenSSH rejects a key without it
		}
		if err := os.WriteFile(key, data, 0o600); err != nil {
			return "", err
		}
		args = append(args, "-i", key)
	}
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " "), nil
}

// shellQuote quotes s for sh when it holds anything but safe characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/-_.=:,@", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Subscribe returns a channel of events, closed when ctx ends or the store closes.
func (s *Store) Subscribe(ctx context.Context) (<-chan Event, error) {
	return s.bus.subscribe(ctx)
}
