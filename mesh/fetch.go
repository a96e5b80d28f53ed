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

// Fetch mirrors a remote repository into project/slug, creating it when missing: it
// runs `git fetch --atomic --prune +refs/*:refs/*` under the repository's write lock,
// over ssh with only opts.PrivateKey and strict checking against opts.KnownHosts
// (written to a private temporary directory and removed afterwards). Progress is
// parsed from git's --progress output. The result lists exactly the ref updates of
// the committed transaction, which is also published as an event.
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

	lock := s.locks.get(repoKey(p, sl))
	if err := lock.Lock(ctx); err != nil {
		return FetchResult{}, err
	}
	defer lock.Unlock()
	var res FetchResult
	ok, err := s.present(p, sl)
	if err != nil {
		return res, err
	}
	if !ok {
		if err := s.createLocked(p, sl); err != nil {
			return res, err
		}
		res.Created = true
	}
	s.clearStaleLocks(p, sl)
	before, err := readRefs(s.repoDir(p, sl))
	if err != nil {
		return res, fmt.Errorf("mesh: fetch: %w", err)
	}
	spool, err := s.spool()
	if err != nil {
		return res, err
	}
	defer os.Remove(spool)
	env := []string{
		eventsEnv + "=" + spool,
		"GIT_SSH_COMMAND=" + sshCmd,
		"GIT_SSH_VARIANT=ssh",
		"GIT_ALLOW_PROTOCOL=ssh:file:https",
	}
	args := []string{"-c", "fetch.writeCommitGraph=false", "fetch", "--progress", "--atomic", "--prune",
		"--no-write-fetch-head", "--no-auto-gc", "--", opts.URL, "+refs/*:refs/*"}
	cmd := s.gitCommand(ctx, s.repoDir(p, sl), env, args...)
	prog := &progressParser{report: opts.Progress}
	cmd.Stderr = prog
	runErr := cmd.Run()
	res.Updates = s.collect(p, sl, spool, before)
	sort.Slice(res.Updates, func(i, j int) bool { return res.Updates[i].Ref < res.Updates[j].Ref })
	if runErr != nil {
		if ctx.Err() != nil {
			return res, fmt.Errorf("%w: %s: %w", ErrFetch, opts.URL, ctx.Err())
		}
		tail := prog.stderrTail()
		if strings.Contains(tail, "Host key verification failed") {
			return res, fmt.Errorf("%w: %w: %s: %w", ErrFetch, ErrHostKey, opts.URL, gitexec.Wrap(args, runErr, tail))
		}
		return res, fmt.Errorf("%w: %s: %w", ErrFetch, opts.URL, gitexec.Wrap(args, runErr, tail))
	}
	s.log.Info("mesh: fetched", "project", p, "slug", sl, "url", opts.URL, "updates", len(res.Updates))
	return res, nil
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
