package testutil

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ssh"
)

func TestMain(m *testing.M) { VerifyMain(m) }

func TestFreePortAndListen(t *testing.T) {
	p := FreePort(t)
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d", p)
	}
	l := Listen(t)
	if !strings.HasPrefix(l.Addr().String(), "127.0.0.1:") {
		t.Fatalf("listener on %s, want loopback", l.Addr())
	}
}

func TestNewHome(t *testing.T) {
	h := NewHome(t)
	for _, d := range []string{h.Repos, h.Config} {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			t.Fatalf("%s missing: %v", d, err)
		}
	}
	if h.Properties != filepath.Join(h.Dir, "shared", "bitbucket.properties") ||
		h.DB != filepath.Join(h.Dir, "shared", "data", "gitfleet.db") ||
		h.Repos != filepath.Join(h.Dir, "shared", "data", "repositories") {
		t.Fatalf("layout differs from DESIGN.md: %+v", h)
	}
	h.WriteProperties(t, "server.port=1\n")
	if b, _ := os.ReadFile(h.Properties); string(b) != "server.port=1\n" {
		t.Fatalf("properties = %q", b)
	}
}

func TestGenerateKeyEveryType(t *testing.T) {
	wantAlgo := map[KeyType]string{
		Ed25519: ssh.KeyAlgoED25519, ECDSA256: ssh.KeyAlgoECDSA256, ECDSA384: ssh.KeyAlgoECDSA384,
		ECDSA521: ssh.KeyAlgoECDSA521, RSA1024: ssh.KeyAlgoRSA, RSA2048: ssh.KeyAlgoRSA,
		RSA3072: ssh.KeyAlgoRSA, RSA4096: ssh.KeyAlgoRSA, DSA: ssh.KeyAlgoDSA, //nolint:staticcheck
	}
	for _, kt := range AllKeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			k := GenerateKey(t, kt)
			if k.Public.Type() != wantAlgo[kt] {
				t.Fatalf("type %s, want %s", k.Public.Type(), wantAlgo[kt])
			}
			st, err := os.Stat(k.Path)
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("private key file mode: %v %v", st, err)
			}
			parsed, err := ssh.ParsePrivateKey(k.PrivatePEM)
			if err != nil {
				t.Fatal(err)
			}
			if string(parsed.PublicKey().Marshal()) != string(k.Public.Marshal()) {
				t.Fatal("PEM does not hold the same key")
			}
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.AuthorizedKey))
			if err != nil || string(pub.Marshal()) != string(k.Public.Marshal()) {
				t.Fatalf("authorized key line %q: %v", k.AuthorizedKey, err)
			}
		})
	}
}

func TestGenerateRepoIsDeterministic(t *testing.T) {
	g := NewGit(t)
	a, b := filepath.Join(t.TempDir(), "a.git"), filepath.Join(t.TempDir(), "b.git")
	GenerateRepo(t, a, SmallRepo)
	GenerateRepo(t, b, SmallRepo)
	ra, rb := g.Refs(a), g.Refs(b)
	if len(ra) != 1+SmallRepo.Branches+SmallRepo.Tags {
		t.Fatalf("refs = %v", ra)
	}
	for name, id := range ra {
		if rb[name] != id {
			t.Fatalf("ref %s differs: %s vs %s", name, id, rb[name])
		}
	}
	if n := strings.TrimSpace(g.Run(a, "rev-list", "--count", "main")); n != strconv.Itoa(SmallRepo.Commits) {
		t.Fatalf("commits = %s", n)
	}
	if head := strings.TrimSpace(g.Run(a, "symbolic-ref", "HEAD")); head != "refs/heads/main" {
		t.Fatalf("HEAD -> %s", head)
	}
	g.Fsck(a)
	other := SmallRepo
	other.Seed = 2
	c := filepath.Join(t.TempDir(), "c.git")
	GenerateRepo(t, c, other)
	if g.Refs(c)["refs/heads/main"] == ra["refs/heads/main"] {
		t.Fatal("a different seed gave the same history")
	}
}

func TestPreset40kSize(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the benchmark repository")
	}
	g := NewGit(t)
	dir := CachedRepo(t, Preset40k)
	out := g.Run(dir, "count-objects", "-v")
	var objects, sizeKiB int
	for _, line := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.Atoi(strings.TrimSpace(v))
		switch k {
		case "in-pack":
			objects = n
		case "size-pack":
			sizeKiB = n
		}
	}
	t.Logf("preset: %d objects, %d KiB packed", objects, sizeKiB)
	if objects < 36000 || objects > 44000 {
		t.Errorf("preset has %d objects, want about 40,000", objects)
	}
	if sizeKiB < 12*1024 || sizeKiB > 18*1024 {
		t.Errorf("preset packs to %d KiB, want about 15 MB", sizeKiB)
	}
}

func TestGitSSHAgainstRealSshd(t *testing.T) {
	g := NewGit(t)
	key := GenerateKey(t, Ed25519)
	sshd := StartSshd(t, []*Key{key})
	kh := sshd.KnownHosts(t)
	// A whoami round trip through the real client proves keys, known_hosts and config.
	c := NewSSH(t, sshd.User, "127.0.0.1", sshd.Port, key, kh)
	out, stderr, err := c.Run("echo", "hello")
	if err != nil || strings.TrimSpace(out) != "hello" {
		t.Fatalf("ssh echo: %q %v\n%s", out, err, stderr)
	}
	// git over OpenSSH: clone a repository that sshd serves from disk.
	repo := filepath.Join(t.TempDir(), "r.git")
	GenerateRepo(t, repo, SmallRepo)
	g.SetSSH(key, kh)
	dst := filepath.Join(t.TempDir(), "clone")
	g.Run("", "clone", "-q", sshd.URL(repo), dst)
	if got, want := strings.TrimSpace(g.Run(dst, "rev-parse", "HEAD")), g.Refs(repo)["refs/heads/main"]; got != want {
		t.Fatalf("clone HEAD %s, want %s", got, want)
	}
	// A host key that is not pinned is refused: strict checking is on.
	other := WriteKnownHosts(t, "127.0.0.1", sshd.Port, GenerateKey(t, Ed25519).Public)
	c2 := NewSSH(t, sshd.User, "127.0.0.1", sshd.Port, key, other)
	if _, _, err := c2.Run("true"); err == nil {
		t.Fatal("ssh accepted an unpinned host key")
	}
}

func TestGitIgnoresMachineConfig(t *testing.T) {
	g := NewGit(t)
	if out, err := g.TryRun("", "config", "--get", "user.name"); err == nil {
		t.Fatalf("saw a user.name from outside the test: %q", out)
	}
	if got := strings.TrimSpace(g.Run("", "config", "--get", "init.defaultBranch")); got != "main" {
		t.Fatalf("init.defaultBranch = %q", got)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"abc": "abc", "a b": "'a b'", "it's": `'it'\''s'`, "": "''", "/tmp/x-1": "/tmp/x-1"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGoroutinesSeesAndForgets(t *testing.T) {
	stop := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	go func() { leakProbe(started, stop); close(done) }()
	<-started
	count := func() int {
		err := findLeaks(0)
		if err == nil {
			return 0
		}
		return strings.Count(err.Error(), "testutil.leakProbe(")
	}
	if count() != 1 {
		t.Fatal("findLeaks does not list a running goroutine")
	}
	close(stop)
	<-done
	if left := WaitGoroutines(LeakGrace); len(left) != 0 {
		t.Fatalf("goroutines left after the probe ended: %v", left)
	}
}

func leakProbe(started, stop chan struct{}) {
	close(started)
	<-stop
}

// TestBuildRepoGoGitMatchesGit checks that go-git builds a spec's repository
// with exactly the refs (and so the objects) git fast-import makes.
func TestBuildRepoGoGitMatchesGit(t *testing.T) {
	Require(t, "git")
	spec := SmallRepo
	viaGit := filepath.Join(t.TempDir(), "git.git")
	require.NoError(t, BuildRepo(context.Background(), viaGit, spec))
	viaGoGit := filepath.Join(t.TempDir(), "gogit.git")
	require.NoError(t, BuildRepoGoGit(viaGoGit, spec))

	g := NewGit(t)
	want := g.Refs(viaGit)
	require.Len(t, want, 1+spec.Branches+spec.Tags)
	assert.Equal(t, want, g.Refs(viaGoGit))
	assert.Equal(t, "refs/heads/main", strings.TrimSpace(g.Run(viaGoGit, "symbolic-ref", "HEAD")))
	g.Fsck(viaGoGit)
}
