package mirror

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// DefaultFreshnessWait is how long a read on a mirror waits, unless
// Config.FreshnessWait says otherwise, for the mirror to catch up with the
// upstream before it serves the read from the upstream instead.
const DefaultFreshnessWait = 5 * time.Second

// freshnessAsk bounds the question to the upstream that opens every read.
const freshnessAsk = 2 * time.Second

// FreshnessStats counts how reads on the mirror met the upstream's state (see
// Mirror.GitBackend).
type FreshnessStats struct {
	Fresh      uint64 `json:"fresh"`      // the mirror had the upstream's refs at once
	Waited     uint64 `json:"waited"`     // the mirror caught up within the wait
	Proxied    uint64 `json:"proxied"`    // served from the upstream: the mirror was still behind
	Unverified uint64 `json:"unverified"` // the upstream could not be asked: served as the mirror has it, with a warning
}

type freshness struct {
	fresh, waited, proxied, unverified atomic.Uint64
}

// FreshnessStats returns the counts so far.
func (m *Mirror) FreshnessStats() FreshnessStats {
	f := &m.fresh
	return FreshnessStats{Fresh: f.fresh.Load(), Waited: f.waited.Load(), Proxied: f.proxied.Load(), Unverified: f.unverified.Load()}
}

// GitBackend wraps next (normally Config.Repos) so that a read never returns
// refs older than the upstream's at the moment the read arrived: a clone right
// after a push to the upstream sees that push. For git-upload-pack and
// git-upload-archive it asks the upstream for the repository's refs hash (one
// signed request, served from the upstream's memory) and compares it with the
// mirror's. Equal: served here. Different: the mirror fetches the repository
// at once and the read waits, up to Config.FreshnessWait, for the mirror's refs
// to match the upstream's (asked again every second, so that a newer push does
// not make it wait in vain); past the wait the read is served from the upstream
// itself, through an SSH connection made with the mirror's key, so it is never
// stale, only slower. When the upstream cannot be asked, the read is served as
// the mirror has it and the client is told so on stderr. Git LFS objects need
// no check: a mirror has them before the refs that point to them.
func (m *Mirror) GitBackend(next sshserve.GitBackend) sshserve.GitBackend {
	return &freshBackend{m: m, next: next}
}

type freshBackend struct {
	m    *Mirror
	next sshserve.GitBackend
}

func (b *freshBackend) ServeGit(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	m := b.m
	wait := m.cfg.FreshnessWait
	if wait == 0 {
		wait = DefaultFreshnessWait
	}
	if wait < 0 || (req.Service != gitfleet.UploadPack && req.Service != gitfleet.UploadArchive) {
		return b.next.ServeGit(ctx, req, stdin, stdout, stderr)
	}
	p, s := req.Repo.Project, req.Repo.Slug
	switch m.awaitFresh(ctx, p, s, wait) {
	case freshHere:
		m.fresh.fresh.Add(1)
	case freshAfterWait:
		m.fresh.waited.Add(1)
	case freshUnknown:
		m.fresh.unverified.Add(1)
		io.WriteString(stderr, "gitfleet mirror: the upstream cannot be reached to check that this mirror is up to date; serving the mirror's copy, which may be behind\n")
	case freshBehind:
		m.fresh.proxied.Add(1)
		m.log.Info("mirror behind the upstream: read served from the upstream", "repo", p+"/"+s, "waited", wait)
		return m.proxy(ctx, req, stdin, stdout, stderr)
	}
	return b.next.ServeGit(ctx, req, stdin, stdout, stderr)
}

type freshResult int

const (
	freshHere freshResult = iota
	freshAfterWait
	freshBehind
	freshUnknown
)

// awaitFresh compares the mirror's refs of project/slug with the upstream's
// and, when they differ, asks for a fetch and waits up to wait for them to match.
func (m *Mirror) awaitFresh(ctx context.Context, project, slug string, wait time.Duration) freshResult {
	want, err := m.upstreamRefsHash(ctx, project, slug)
	if err != nil {
		m.log.Warn("refs hash of the upstream unavailable", "repo", project+"/"+slug, "err", err)
		return freshUnknown
	}
	if have, err := m.cfg.Repos.RefsHash(ctx, project, slug); err == nil && have == want {
		return freshHere
	}
	m.mu.Lock()
	s := m.sync
	m.mu.Unlock()
	if s != nil {
		s.schedule(project, slug, want, false)
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	asked := time.Now()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return freshBehind
		case <-tick.C:
		}
		if have, err := m.cfg.Repos.RefsHash(ctx, project, slug); err == nil && have == want {
			return freshAfterWait
		}
		if time.Since(asked) >= time.Second {
			asked = time.Now()
			if w, err := m.upstreamRefsHash(ctx, project, slug); err == nil {
				want = w
			}
		}
	}
	return freshBehind
}

// upstreamRefsHash asks the upstream for a repository's refs hash.
func (m *Mirror) upstreamRefsHash(ctx context.Context, project, slug string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, freshnessAsk)
	defer cancel()
	var out struct {
		RefsHash string `json:"refsHash"`
	}
	path := "/repos/" + url.PathEscape(project) + "/" + url.PathEscape(slug) + "/refs-hash"
	if _, err := m.api.call(ctx, http.MethodGet, path, nil, &out); err != nil {
		return "", err
	}
	if out.RefsHash == "" {
		return "", errors.New("the upstream sent no refs hash")
	}
	return out.RefsHash, nil
}

// proxy runs the read on the upstream over SSH with the mirror's key (which may
// read every repository the mirror serves), the upstream's host key pinned as
// for fetches, and passes its streams through.
func (m *Mirror) proxy(ctx context.Context, req gitfleet.GitRequest, stdin io.Reader, stdout, stderr io.Writer) error {
	u, err := url.Parse(m.fetchURL(req.Repo.Project, req.Repo.Slug))
	if err != nil {
		return err
	}
	kh, err := m.knownHosts()
	if err != nil {
		return err
	}
	pinned, err := parseKnownHostKeys(kh)
	if err != nil {
		return err
	}
	user := "git"
	if u.User != nil {
		user = u.User.Username()
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(m.cfg.Key.Signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			for _, k := range pinned {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil
				}
			}
			return fmt.Errorf("mirror: the upstream's host key %s is not the pinned one", ssh.FingerprintSHA256(key))
		},
		Timeout: 30 * time.Second,
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return fmt.Errorf("mirror: proxy to the upstream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, u.Host, cfg)
	if err != nil {
		conn.Close()
		return fmt.Errorf("mirror: proxy to the upstream: %w", err)
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("mirror: proxy to the upstream: %w", err)
	}
	defer sess.Close()
	if req.Protocol > 0 {
		sess.Setenv("GIT_PROTOCOL", fmt.Sprintf("version=%d", req.Protocol))
	}
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	err = sess.Run(fmt.Sprintf("%s '%s'", req.Service, u.Path))
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &mesh.ExitError{Service: req.Service, Code: ee.ExitStatus(), Err: err}
	}
	return err
}

// parseKnownHostKeys returns the keys of known_hosts lines.
func parseKnownHostKeys(data []byte) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for len(bytes.TrimSpace(data)) > 0 {
		_, _, key, _, rest, err := ssh.ParseKnownHosts(data)
		if err != nil {
			return nil, fmt.Errorf("mirror: known hosts of the upstream: %w", err)
		}
		keys = append(keys, key)
		data = rest
	}
	if len(keys) == 0 {
		return nil, errors.New("mirror: no known host key for the upstream")
	}
	return keys, nil
}

// handleRefsHash serves the signed GET /repos/{project}/{slug}/refs-hash: the
// refs hash of one repository the mirror may read, for the freshness check
// that opens every read on the mirror.
func (u *Upstream) handleRefsHash(w http.ResponseWriter, r *http.Request, rec *MirrorRecord, _ []byte) {
	repo, err := gitfleet.NewRepoName(r.PathValue("project"), r.PathValue("slug"))
	if err != nil || !rec.canRead(repo.Project) || u.cfg.Repos == nil {
		writeError(w, http.StatusNotFound, "not_found", "no such repository")
		return
	}
	h, err := u.cfg.Repos.RefsHash(r.Context(), repo.Project, repo.Slug)
	if errors.Is(err, mesh.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no such repository")
		return
	}
	if err != nil {
		u.internal(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		RefsHash string `json:"refsHash"`
	}{h})
}
