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
// two phases: without any lock it lists the remote's refs and fetches the objects
// of their tips by id (no ref changes, so clones are not held up by the transfer);
// then, under the repository's write lock, `git fetch --atomic --prune
// +refs/*:refs/*` updates the refs, transferring only what changed meanwhile.
// Progress is parsed from git's --progress output. The result lists exactly the ref
// updates committed, which are also published as events.
func (s *Store) Fetch(ctx context.Context, project, slug string, opts FetchOptions) (FetchResult, error) {
	ctx, done, err := s.begin(ctx)
	if err != nil {
		return FetchResult{}, err
	}
	defer done()
	p, sl, err := Normalize(project, slug)
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
	if err := lock.Lock(ctx); err != nil {
		return res, err
	}
	ok, err := s.present(p, sl)
	if err == nil && !ok {
		if err = s.createLocked(p, sl); err == nil {
			res.Created = true
		}
	}
	lock.Unlock()
	if err != nil {
		return res, err
	}
	dir := s.repoDir(p, sl)
	prog := &progressParser{report: opts.Progress}

	// Phase 1, without the lock: bring in the objects of the remote's ref tips, so
	// clones are not held up for the length of the transfer. No ref changes.
	ls := []string{"ls-remote", "--", opts.URL}
	cmd := s.gitCommand(ctx, dir, netEnv, ls...)
	cmd.Stderr = prog
	out, err := cmd.Output()
	if err != nil {
		return res, fetchError(ctx, opts.URL, ls, err, prog)
	}
	if tips := tipObjects(out); tips != "" {
		get := []string{"-c", "fetch.writeCommitGraph=false", "fetch", "--progress", "--no-write-fetch-head",
			"--no-auto-gc", "--no-tags", "--stdin", "--", opts.URL}
		cmd = s.gitCommand(ctx, dir, netEnv, get...)
		cmd.Stdin = strings.NewReader(tips)
		cmd.Stderr = prog
		if err := cmd.Run(); err != nil {
			return res, fetchError(ctx, opts.URL, get, err, prog)
		}
	}

	// Phase 2, under the write lock: the real fetch, which finds the objects present
	// (or fetches what changed meanwhile) and updates the refs in one transaction.
	if err := lock.Lock(ctx); err != nil {
		return res, err
	}
	defer lock.Unlock()
	if ok, err := s.present(p, sl); err != nil || !ok {
		return res, fmt.Errorf("%w: %s/%s was deleted during the fetch", ErrNotFound, p, sl)
	}
	s.clearStaleLocks(p, sl)
	before, err := readRefs(dir)
	if err != nil {
		return res, fmt.Errorf("mesh: fetch: %w", err)
	}
	spool, err := s.spool()
	if err != nil {
		return res, err
	}
	defer os.Remove(spool)
	args := []string{"-c", "fetch.writeCommitGraph=false", "fetch", "--progress", "--atomic", "--prune",
		"--no-write-fetch-head", "--no-auto-gc", "--", opts.URL, "+refs/*:refs/*"}
	cmd = s.gitCommand(ctx, dir, append(netEnv, eventsEnv+"="+spool), args...)
	cmd.Stderr = prog
	runErr := cmd.Run()
	res.Updates = s.collect(p, sl, spool, before)
	sort.Slice(res.Updates, func(i, j int) bool { return res.Updates[i].Ref < res.Updates[j].Ref })
	if runErr != nil {
		return res, fetchError(ctx, opts.URL, args, runErr, prog)
	}
	s.log.Info("mesh: fetched", "project", p, "slug", sl, "url", opts.URL, "updates", len(res.Updates))
	return res, nil
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

// tipObjects returns the distinct object ids of `git ls-remote` output, one per
// line, leaving out peeled tag entries (not ref tips, so not fetchable by id).
func tipObjects(lsRemote []byte) string {
	seen := map[string]bool{}
	var b strings.Builder
	for _, line := range strings.Split(string(lsRemote), "\n") {
		id, ref, ok := strings.Cut(line, "\t")
		if !ok || !isObjectID(id) || strings.HasSuffix(ref, "^{}") || seen[id] {
			continue
		}
		seen[id] = true
		b.WriteString(id + "\n")
	}
	return b.String()
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
