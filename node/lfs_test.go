package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// TestLFSOverSSH drives Debian's git-lfs (3.3, which tries the SSH transfer
// protocol first for an ssh:// remote, with no configuration) against a primary
// with its in-process store: a writer pushes two LFS files; a reader clones them
// (the smudge filter downloads over SSH), fetches only one of them into a clone
// made without them, and may list locks but neither upload nor lock; the writer
// takes, lists and releases a lock; someone with no access gets nothing. The
// objects on the server are exactly the files, stored by SHA-256.
func TestLFSOverSSH(t *testing.T) {
	writer := testutil.NewGit(t)
	writer.InstallLFS(t)
	testutil.Require(t, "ssh")
	reader := testutil.NewGit(t)
	reader.InstallLFS(t)
	stranger := testutil.NewGit(t)
	stranger.InstallLFS(t)
	home := gitfleet.Home(t.TempDir())
	cfg := testConfig(t, home)
	keys := map[string]*testutil.Key{
		"alice": testutil.GenerateKey(t, testutil.Ed25519),
		"bob":   testutil.GenerateKey(t, testutil.Ed25519),
		"eve":   testutil.GenerateKey(t, testutil.Ed25519),
	}
	n := &Node{
		Home: home, Config: cfg, State: mirror.NewMemoryState(),
		PublicKeyCallback: func(ctx context.Context, c sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
			for name, k := range keys {
				if ssh.FingerprintSHA256(key) == k.Fingerprint() {
					return sshserve.Principal{Name: name}, nil
				}
			}
			return sshserve.Principal{}, errors.New("unknown")
		},
		Authorizer: func(ctx context.Context, c sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
			switch {
			case p.Name == "alice":
				return nil
			case p.Name == "bob" && access == sshserve.AccessRead:
				return nil
			case p.Name == "bob":
				return &sshserve.DeniedError{Message: "bob may only read"}
			}
			return sshserve.ErrNotFound
		},
		Setup: func(ctx context.Context, repos mesh.Repos) error { return repos.Create(ctx, "PROJ", "media") },
	}
	known := serveSSH(t, n)
	writer.SetSSH(keys["alice"], known)
	reader.SetSSH(keys["bob"], known)
	stranger.SetSSH(keys["eve"], known)
	url := gitfleet.CloneURL(cfg.SSHBaseURL(), gitfleet.RepoName{Project: "PROJ", Slug: "media"})
	repoDir := home.RepoDir(gitfleet.RepoName{Project: "PROJ", Slug: "media"})

	// The writer pushes two LFS files.
	work := t.TempDir()
	w := filepath.Join(work, "w")
	writer.Run(work, "clone", "-q", url, "w")
	writer.Run(w, "lfs", "track", "*.bin")
	files := map[string][]byte{"big.bin": randomBytes(t, 3<<20), "small.bin": randomBytes(t, 100<<10)}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(w, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writer.Run(w, "add", ".gitattributes", "big.bin", "small.bin")
	writer.Run(w, "commit", "-q", "-m", "assets")
	writer.Run(w, "push", "-q", "origin", "HEAD:main")
	for name, data := range files {
		oid := sha256Hex(data)
		got, err := os.ReadFile(filepath.Join(repoDir, "lfs", "objects", oid[:2], oid[2:4], oid))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s on the server: %d bytes, %v; want its %d bytes", name, len(got), err, len(data))
		}
	}
	if left, _ := os.ReadDir(filepath.Join(repoDir, "lfs", "incoming")); len(left) != 0 {
		t.Fatalf("upload debris left in lfs/incoming: %v", left)
	}

	// The reader clones: the files arrive whole.
	r := filepath.Join(work, "r")
	reader.Run(work, "clone", "-q", url, "r")
	for name, data := range files {
		if got, err := os.ReadFile(filepath.Join(r, name)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s in the reader's clone: %d bytes, %v", name, len(got), err)
		}
	}
	// A clone without LFS content, then one file fetched.
	reader.SetEnv("GIT_LFS_SKIP_SMUDGE", "1")
	p := filepath.Join(work, "p")
	reader.Run(work, "clone", "-q", url, "p")
	reader.SetEnv("GIT_LFS_SKIP_SMUDGE", "0")
	reader.Run(p, "lfs", "pull", "-I", "small.bin")
	if got, _ := os.ReadFile(filepath.Join(p, "small.bin")); !bytes.Equal(got, files["small.bin"]) {
		t.Fatalf("small.bin after lfs pull -I: %d bytes", len(got))
	}
	if got, _ := os.ReadFile(filepath.Join(p, "big.bin")); !bytes.HasPrefix(got, []byte("version https://git-lfs.github.com/spec/v1")) {
		t.Fatalf("big.bin was fetched too: %d bytes", len(got))
	}
	// git lfs fetch brings the rest into the local LFS store.
	reader.Run(p, "lfs", "fetch", "--all", "origin")
	bigOID := sha256Hex(files["big.bin"])
	if got, err := os.ReadFile(filepath.Join(p, ".git", "lfs", "objects", bigOID[:2], bigOID[2:4], bigOID)); err != nil || !bytes.Equal(got, files["big.bin"]) {
		t.Fatalf("big.bin after lfs fetch --all: %d bytes, %v", len(got), err)
	}

	// The reader may not upload: a new object stays off the server.
	extra := randomBytes(t, 10<<10)
	if err := os.WriteFile(filepath.Join(r, "new.bin"), extra, 0o644); err != nil {
		t.Fatal(err)
	}
	reader.Run(r, "add", "new.bin")
	reader.Run(r, "commit", "-q", "-m", "new")
	if _, err := reader.TryRun(r, "lfs", "push", "origin", "main"); err == nil {
		t.Fatal("a reader's lfs push succeeded")
	}
	oid := sha256Hex(extra)
	if _, err := os.Stat(filepath.Join(repoDir, "lfs", "objects", oid[:2], oid[2:4], oid)); err == nil {
		t.Fatal("a reader's object reached the server")
	}

	// Locks: the writer locks, everyone with read access sees it, the reader
	// cannot lock, the writer releases it.
	writer.Run(w, "lfs", "lock", "big.bin")
	if out := writer.Run(w, "lfs", "locks"); !strings.Contains(out, "big.bin") || !strings.Contains(out, "alice") {
		t.Fatalf("the writer's lfs locks: %q", out)
	}
	if out := reader.Run(r, "lfs", "locks"); !strings.Contains(out, "big.bin") || !strings.Contains(out, "alice") {
		t.Fatalf("the reader's lfs locks: %q", out)
	}
	if _, err := reader.TryRun(r, "lfs", "lock", "small.bin"); err == nil {
		t.Fatal("a reader took a lock")
	}
	writer.Run(w, "lfs", "unlock", "big.bin")
	if out := writer.Run(w, "lfs", "locks"); strings.Contains(out, "big.bin") {
		t.Fatalf("lfs locks after unlock: %q", out)
	}

	// git-lfs-authenticate (which git-lfs sends only when the SSH transfer
	// protocol fails) says how Git LFS is served here, after the same
	// authorization.
	for _, c := range []struct {
		who  string
		want string
	}{{"bob", "git-lfs-transfer"}, {"eve", "not found"}} {
		args := append(testutil.SSHOptions(keys[c.who].Path, known), "-p", strconv.Itoa(cfg.SSH.Port), "git@127.0.0.1", "git-lfs-authenticate /PROJ/media.git download")
		out, err := exec.Command("ssh", args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(strings.ToLower(string(out)), c.want) {
			t.Fatalf("git-lfs-authenticate as %s: %v, %q; want exit 1 and %q", c.who, err, out, c.want)
		}
	}

	// No access, no objects.
	stranger.SetEnv("GIT_LFS_SKIP_SMUDGE", "1")
	if _, err := stranger.TryRun(work, "clone", "-q", url, "s"); err == nil {
		t.Fatal("a stranger cloned")
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
