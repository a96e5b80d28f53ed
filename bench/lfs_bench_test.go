//go:build bench

package bench

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// lfsWork makes a local repository whose one commit holds a Git LFS file of
// size bytes (random), with git-lfs's filters installed in env's HOME; it
// returns the work tree and the file.
func (e *env) lfsWork(env []string, size int64) (work, file string) {
	t := e.t
	dir := t.TempDir()
	work = filepath.Join(dir, "w")
	for _, args := range [][]string{{"lfs", "install", "--skip-repo"}, {"init", "-q", work}, {"-C", work, "lfs", "track", "*.bin"}} {
		if err := runGit(env, "", args...); err != nil {
			t.Fatal(err)
		}
	}
	file = filepath.Join(work, "big.bin")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, args := range [][]string{{"-C", work, "add", ".gitattributes", "big.bin"}, {"-C", work, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-q", "-m", "big"}} {
		if err := runGit(env, "", args...); err != nil {
			t.Fatal(err)
		}
	}
	return work, file
}

// scp copies with OpenSSH's scp to or from the sshd the benchmark runs,
// trusting its host key through knownHosts (-O: the SCP protocol, as the
// benchmark's sshd has no SFTP subsystem).
func (g *gitSetup) scp(knownHosts, from, to string) error {
	args := append(testutil.SSHOptions(g.key.Path, knownHosts), "-q", "-O", "-P", strconv.Itoa(g.sshd.Port), from, to)
	out, err := exec.Command("scp", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("scp: %v: %s", err, out)
	}
	return nil
}

// benchLFS is comparison 9: Git LFS upload and download of one large object
// over SSH (git-lfs 3.3's SSH transfer protocol, to gitfleet's primary) against
// OpenSSH's scp of the same file to and from sshd, in MB/s, with the server's
// CPU and peak memory (which shows that the object streams: the server never
// holds it). A full run adds one upload of 1 GiB, for its memory.
func (e *env) benchLFS(g *gitSetup) []*Comparison {
	t := e.t
	kh := g.sshd.KnownHosts(t)
	base := append([]string(nil), g.gfEnv...)
	remote := t.TempDir()
	seq := 0
	upload := func(size int64, rounds int, note string) (*Comparison, string, string) {
		work, file := e.lfsWork(base, size)
		mb := float64(size) / 1e6
		c := &Comparison{
			Title: fmt.Sprintf("Git LFS upload of a %d MiB object", size>>20),
			What: "`git lfs push` of one object into a new repository of gitfleet's primary (git-lfs 3.3 over OpenSSH, the SSH " +
				"transfer protocol), against `scp` of the same file to OpenSSH's sshd. Figure: MB/s.",
			Unit: "MB/s", HigherIsBetter: true, Reference: "OpenSSH (scp)", ServerSide: true,
		}
		var repo, copied string
		e.interleave(c, rounds, note, contender{name: "gitfleet (git-lfs)", pid: g.node.PID, run: func() (float64, int, error) {
			seq++
			name := fmt.Sprintf("lfs-up-%d", seq)
			g.node.CreateRepo(t, benchProject, name)
			url := g.node.SSHURL(benchProject, name)
			if err := runGit(append(append([]string(nil), base...), "GIT_LFS_SKIP_PUSH=1"), work, "push", "-q", url, "HEAD:refs/heads/main"); err != nil {
				return 0, 0, err
			}
			repo = url
			secs, err := timed(func() error { return runGit(base, work, "lfs", "push", url, "main") })
			return mb / secs, 0, err
		}}, contender{name: "OpenSSH (scp)", pid: g.sshd.PID, run: func() (float64, int, error) {
			seq++
			copied = fmt.Sprintf("%s/up-%d.bin", remote, seq)
			secs, err := timed(func() error { return g.scp(kh, file, g.sshd.User+"@127.0.0.1:"+copied) })
			return mb / secs, 0, err
		}})
		return c, repo, copied
	}
	size := int64(200 << 20)
	if e.quick {
		size = 50 << 20
	}
	up, url, copied := upload(size, e.rounds, "")
	out := []*Comparison{up}

	clone := filepath.Join(t.TempDir(), "c")
	skip := append(append([]string(nil), base...), "GIT_LFS_SKIP_SMUDGE=1")
	if err := runGit(skip, "", "clone", "-q", url, clone); err != nil {
		t.Fatal(err)
	}
	mb := float64(size) / 1e6
	download := &Comparison{
		Title: fmt.Sprintf("Git LFS download of a %d MiB object", size>>20),
		What: "`git lfs fetch` of one object from gitfleet's primary (git-lfs 3.3, SSH transfer protocol) into a clone without " +
			"it, against `scp` of the same file from OpenSSH's sshd. Figure: MB/s.",
		Unit: "MB/s", HigherIsBetter: true, Reference: "OpenSSH (scp)", ServerSide: true,
	}
	local := t.TempDir()
	e.interleave(download, e.rounds, "", contender{name: "gitfleet (git-lfs)", pid: g.node.PID, run: func() (float64, int, error) {
		if err := os.RemoveAll(filepath.Join(clone, ".git", "lfs", "objects")); err != nil {
			return 0, 0, err
		}
		secs, err := timed(func() error { return runGit(base, clone, "lfs", "fetch", "origin", "main") })
		return mb / secs, 0, err
	}}, contender{name: "OpenSSH (scp)", pid: g.sshd.PID, run: func() (float64, int, error) {
		dst := filepath.Join(local, "down.bin")
		os.Remove(dst)
		secs, err := timed(func() error { return g.scp(kh, g.sshd.User+"@127.0.0.1:"+copied, dst) })
		return mb / secs, 0, err
	}})
	out = append(out, download)
	if !e.quick {
		big, _, _ := upload(1<<30, 1, "one round of 1 GiB, for the server's peak memory")
		out = append(out, big)
	}
	return out
}
