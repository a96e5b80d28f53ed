package sshserve

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func testPublicKey(t testing.TB) (ssh.PublicKey, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

func tcpAddr(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestParseAuthorizedKeys(t *testing.T) {
	_, line := testPublicKey(t)
	cases := []struct {
		name    string
		content string
		wantErr string // substring; empty for success
		check   func(t *testing.T, keys []AuthorizedKey)
	}{
		{"plain with comment", line + " alice@laptop\n", "", func(t *testing.T, keys []AuthorizedKey) {
			if len(keys) != 1 || keys[0].Comment != "alice@laptop" || keys[0].Source != "ak:1" {
				t.Fatalf("%+v", keys)
			}
		}},
		{"comments and blanks", "# keys\n\n   \n" + line + "\n", "", func(t *testing.T, keys []AuthorizedKey) {
			if len(keys) != 1 || keys[0].Source != "ak:4" {
				t.Fatalf("%+v", keys)
			}
		}},
		{"restrict", "restrict " + line, "", func(t *testing.T, keys []AuthorizedKey) {
			if !keys[0].Restrict {
				t.Fatal("restrict not seen")
			}
		}},
		{"implied options", "no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc " + line, "", nil},
		{"from", `restrict,from="10.0.0.0/8,!10.1.0.0/16,192.168.1.7,::1" ` + line, "", func(t *testing.T, keys []AuthorizedKey) {
			k := keys[0]
			for addr, want := range map[string]bool{
				"10.2.3.4:1": true, "10.1.2.3:1": false, "192.168.1.7:22": true, "192.168.1.8:22": false,
				"[::1]:5": true, "[::ffff:10.2.3.4]:1": true, "11.0.0.1:1": false,
			} {
				if got := k.AllowsFrom(tcpAddr(addr)); got != want {
					t.Errorf("AllowsFrom(%s) = %v, want %v", addr, got, want)
				}
			}
			if k.AllowsFrom(nil) {
				t.Error("AllowsFrom(nil) with a from= option")
			}
		}},
		{"only negated", `from="!10.0.0.0/8" ` + line, "", func(t *testing.T, keys []AuthorizedKey) {
			if keys[0].AllowsFrom(tcpAddr("192.0.2.1:1")) || keys[0].AllowsFrom(tcpAddr("10.0.0.1:1")) {
				t.Fatal("a from= option with only negations allowed an address")
			}
		}},
		{"command refused", `command="/bin/sh" ` + line, "ak:1", nil},
		{"environment refused", `environment="A=B" ` + line, `option "environment=\"A=B\"" is not supported`, nil},
		{"permitopen refused", "\n" + `permitopen="host:1" ` + line, "ak:2", nil},
		{"cert-authority refused", "cert-authority " + line, "cert-authority", nil},
		{"host name in from", `from="*.example.com" ` + line, "host names and wildcards are not supported", nil},
		{"unquoted from", `from=10.0.0.1 ` + line, "from= value must be quoted", nil},
		{"bad CIDR", `from="10.0.0.1/8" ` + line, "bits set beyond the prefix", nil},
		{"two from", `from="10.0.0.1",from="10.0.0.2" ` + line, "more than one from=", nil},
		{"garbage", "ssh-ed25519 AAAAnotbase64", "ak:1", nil},
		// As in OpenSSH, everything after the key is its comment.
		{"key text in the comment", line + " " + line, "", func(t *testing.T, keys []AuthorizedKey) {
			if len(keys) != 1 || keys[0].Comment != line {
				t.Fatalf("%+v", keys)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParseAuthorizedKeys("ak", []byte(tc.content))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrAuthorizedKeys) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, keys)
			}
		})
	}
}

func TestLoadAuthorizedKeysAndCallback(t *testing.T) {
	k1, l1 := testPublicKey(t)
	k2, l2 := testPublicKey(t)
	k3, _ := testPublicKey(t)
	path := filepath.Join(t.TempDir(), "authorized_keys")
	if err := os.WriteFile(path, []byte(l1+" alice\n"+`from="192.0.2.0/24" `+l2+" bob\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadAuthorizedKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	cb := AuthorizedKeysCallback(keys, func(k AuthorizedKey) Principal { return Principal{Name: k.Comment} })
	conn := func(addr string) ConnInfo { return ConnInfo{RemoteAddr: tcpAddr(addr)} }
	if p, err := cb(context.Background(), conn("127.0.0.1:1"), k1); err != nil || p.Name != "alice" {
		t.Fatalf("alice: %+v %v", p, err)
	}
	if p, err := cb(context.Background(), conn("192.0.2.9:1"), k2); err != nil || p.Name != "bob" {
		t.Fatalf("bob from an allowed address: %+v %v", p, err)
	}
	if _, err := cb(context.Background(), conn("127.0.0.1:1"), k2); err == nil {
		t.Fatal("bob accepted from an address his from= option excludes")
	}
	if _, err := cb(context.Background(), conn("127.0.0.1:1"), k3); err == nil {
		t.Fatal("unknown key accepted")
	}
	if _, err := LoadAuthorizedKeys(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing file gave no error")
	}
}

// FuzzAuthorizedKeys checks that parsing never panics and that every key it
// returns carries only the options it understands, with a file:line source.
func FuzzAuthorizedKeys(f *testing.F) {
	_, line := testPublicKey(f)
	for _, s := range []string{line, "restrict " + line, `from="10.0.0.0/8,!10.1.0.0/16" ` + line,
		`command="x" ` + line, "# c\n" + line + " c", `from="` + line} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseAuthorizedKeys("f", data)
		if err != nil {
			if !errors.Is(err, ErrAuthorizedKeys) {
				t.Fatalf("error %v does not wrap ErrAuthorizedKeys", err)
			}
			return
		}
		for _, k := range keys {
			if k.Key == nil || !strings.HasPrefix(k.Source, "f:") {
				t.Fatalf("bad key %+v", k)
			}
			for _, p := range k.From {
				if !p.Prefix.IsValid() {
					t.Fatalf("invalid prefix in %+v", k)
				}
			}
		}
	})
}
