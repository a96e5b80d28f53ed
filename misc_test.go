package gitfleet_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

var errNotExist = fs.ErrNotExist

func TestService(t *testing.T) {
	for _, name := range []string{"git-upload-pack", "git-receive-pack", "git-upload-archive"} {
		s, err := gitfleet.ParseService(name)
		if err != nil || string(s) != name {
			t.Fatalf("ParseService(%q) = %q, %v", name, s, err)
		}
		if s.Writes() != (name == "git-receive-pack") {
			t.Errorf("%s.Writes() = %v", s, s.Writes())
		}
		if s.Subcommand() != name[len("git-"):] {
			t.Errorf("%s.Subcommand() = %q", s, s.Subcommand())
		}
	}
	for _, name := range []string{"", "upload-pack", "git upload-pack", "git-shell", "git-upload-pack "} {
		if _, err := gitfleet.ParseService(name); err == nil {
			t.Errorf("ParseService(%q) accepted", name)
		}
	}
}

func TestParseProtocol(t *testing.T) {
	for v, want := range map[string]int{"version=0": 0, "version=1": 1, "version=2": 2} {
		got, err := gitfleet.ParseProtocol(v)
		if err != nil || got != want {
			t.Errorf("ParseProtocol(%q) = %d, %v", v, got, err)
		}
	}
	for _, v := range []string{"", "version=3", "version=2:x", "VERSION=2", "version=2\n"} {
		if _, err := gitfleet.ParseProtocol(v); err == nil {
			t.Errorf("ParseProtocol(%q) accepted", v)
		}
	}
	req := gitfleet.GitRequest{Service: gitfleet.UploadPack, Protocol: 2}
	if env := req.Env(); len(env) != 1 || env[0] != "GIT_PROTOCOL=version=2" {
		t.Errorf("Env() = %q", env)
	}
	req.Protocol = 0
	if env := req.Env(); env != nil {
		t.Errorf("Env() for version 0 = %q, want none", env)
	}
}

func sshKey(t *testing.T, k any) ssh.PublicKey {
	t.Helper()
	pub, err := ssh.NewPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestKeyPolicy(t *testing.T) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	ed, ecKey := sshKey(t, edPub), sshKey(t, &ec.PublicKey)
	small, big := sshKey(t, &rsa1024.PublicKey), sshKey(t, &rsa2048.PublicKey)
	tests := []struct {
		name   string
		policy gitfleet.KeyPolicy
		key    ssh.PublicKey
		ok     bool
	}{
		{"ed25519", gitfleet.KeyPolicy{}, ed, true},
		{"ecdsa", gitfleet.KeyPolicy{}, ecKey, true},
		{"rsa2048", gitfleet.KeyPolicy{}, big, true},
		{"rsa1024", gitfleet.KeyPolicy{}, small, false},
		{"rsa1024 allowed", gitfleet.KeyPolicy{MinRSABits: 1024}, small, true},
		{"rsa2048 below 3072", gitfleet.KeyPolicy{MinRSABits: 3072}, big, false},
		{"types exclude", gitfleet.KeyPolicy{Types: []string{ssh.KeyAlgoED25519}}, ecKey, false},
		{"types include", gitfleet.KeyPolicy{Types: []string{ssh.KeyAlgoED25519}}, ed, true},
	}
	for _, tt := range tests {
		err := tt.policy.Check(tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Check = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, gitfleet.ErrKeyRejected) {
			t.Errorf("%s: %v is not an ErrKeyRejected", tt.name, err)
		}
	}
	if got := gitfleet.RSABits(big); got != 2048 {
		t.Errorf("RSABits = %d", got)
	}
	if got := gitfleet.RSABits(ed); got != 0 {
		t.Errorf("RSABits(ed25519) = %d", got)
	}
}

func TestCloneURL(t *testing.T) {
	r := gitfleet.RepoName{Project: "PROJ", Slug: "repo"}
	tests := []struct{ base, want string }{
		{"ssh://git@host:7999", "ssh://git@host:7999/proj/repo.git"},
		{"ssh://git@host:7999/", "ssh://git@host:7999/proj/repo.git"},
		{"ssh://git@host:22", "ssh://git@host/proj/repo.git"},
		{"ssh://git@[::1]:22", "ssh://git@[::1]/proj/repo.git"},
		{gitfleet.SSHBaseURL("::1", 7999), "ssh://git@[::1]:7999/proj/repo.git"},
		{gitfleet.SSHBaseURL("::1", 22), "ssh://git@[::1]/proj/repo.git"},
		{gitfleet.SSHBaseURL("host", 0), "ssh://git@host/proj/repo.git"},
	}
	for _, tt := range tests {
		if got := gitfleet.CloneURL(tt.base, r); got != tt.want {
			t.Errorf("CloneURL(%q) = %q, want %q", tt.base, got, tt.want)
		}
	}
}

func TestHome(t *testing.T) {
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	if h := gitfleet.ResolveHome("/flag", env(map[string]string{"GITFLEET_HOME": "/env"})); h != "/flag" {
		t.Errorf("flag: %q", h)
	}
	if h := gitfleet.ResolveHome("", env(map[string]string{"GITFLEET_HOME": "/env"})); h != "/env" {
		t.Errorf("env: %q", h)
	}
	if h := gitfleet.ResolveHome("", env(map[string]string{"GITFLEET_HOME": ""})); h != gitfleet.DefaultHome {
		t.Errorf("empty env: %q", h)
	}
	if h := gitfleet.ResolveHome("", nil); h != gitfleet.DefaultHome {
		t.Errorf("no env: %q", h)
	}
	h := gitfleet.Home("/h")
	for got, want := range map[string]string{
		h.PropertiesFile():  "/h/shared/bitbucket.properties",
		h.ConfigDir():       "/h/shared/config",
		h.RepositoriesDir(): "/h/shared/data/repositories",
		h.DBFile():          "/h/shared/data/gitfleet.db",
		h.RepoDir(gitfleet.RepoName{Project: "P", Slug: "r"}): "/h/shared/data/repositories/P/r.git",
	} {
		if got != filepath.FromSlash(want) {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestProxyPolicy(t *testing.T) {
	for in, want := range map[string]gitfleet.ProxyPolicy{"": gitfleet.ProxyOff, "off": gitfleet.ProxyOff, " Optional ": gitfleet.ProxyOptional, "REQUIRED": gitfleet.ProxyRequired} {
		got, err := gitfleet.ParseProxyPolicy(in)
		if err != nil || got != want {
			t.Errorf("ParseProxyPolicy(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := gitfleet.ParseProxyPolicy("yes"); err == nil {
		t.Error("ParseProxyPolicy(yes) accepted")
	}
	var p gitfleet.ProxyPolicy
	if err := p.UnmarshalText([]byte("required")); err != nil || p != gitfleet.ProxyRequired {
		t.Errorf("UnmarshalText: %v, %v", p, err)
	}
	if b, _ := p.MarshalText(); string(b) != "required" {
		t.Errorf("MarshalText = %q", b)
	}
}

func TestBackoff(t *testing.T) {
	b := gitfleet.Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond, Jitter: -1}
	want := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, w := range want {
		if got := b.Delay(i + 1); got != w*time.Millisecond {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := b.Delay(1 << 30); got != 80*time.Millisecond {
		t.Errorf("Delay(huge) = %v", got)
	}
	j := gitfleet.Backoff{Min: time.Second, Max: time.Second, Jitter: 0.5}
	seen := map[time.Duration]bool{}
	for range 50 {
		d := j.Delay(3)
		if d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("jittered delay %v outside [0.5s, 1s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Error("jitter gave the same delay 50 times")
	}
	var zero gitfleet.Backoff
	if d := zero.Delay(1); d < 80*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("zero Backoff's first delay = %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (gitfleet.Backoff{Min: time.Hour}).Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled context = %v", err)
	}
	if err := (gitfleet.Backoff{Min: time.Millisecond}).Wait(context.Background(), 1); err != nil {
		t.Errorf("Wait = %v", err)
	}
}
