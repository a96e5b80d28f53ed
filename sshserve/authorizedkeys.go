package sshserve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// AuthorizedKey is one line of an OpenSSH authorized_keys file.
type AuthorizedKey struct {
	// Key is the public key.
	Key ssh.PublicKey
	// Comment is the text after the key, often "user@host".
	Comment string
	// Restrict is true when the line has the "restrict" option. The server never
	// offers a shell, a pty or forwarding, so it changes nothing else here.
	Restrict bool
	// From holds the patterns of a from="..." option; empty means any address.
	From []AddrPattern
	// Source is "file:line", for messages.
	Source string
}

// AddrPattern is one element of a from="..." option: an address or CIDR block,
// optionally negated with a leading '!'.
type AddrPattern struct {
	Prefix  netip.Prefix
	Negated bool
}

// ErrAuthorizedKeys is wrapped by every error ParseAuthorizedKeys returns.
var ErrAuthorizedKeys = errors.New("sshserve: bad authorized_keys line")

// impliedOptions are options whose effect the server always has (no pty, no
// forwarding, no rc file), so they are accepted and change nothing.
var impliedOptions = map[string]bool{
	"no-pty": true, "no-port-forwarding": true, "no-agent-forwarding": true,
	"no-x11-forwarding": true, "no-user-rc": true,
}

// LoadAuthorizedKeys reads an OpenSSH authorized_keys file. Blank lines and '#'
// comments are skipped. The options "restrict" and from="CIDR,..." are honoured (see
// AllowsFrom), and "no-pty", "no-port-forwarding", "no-agent-forwarding",
// "no-X11-forwarding" and "no-user-rc" are accepted because the server always acts
// so; any other option (command=, environment=, permitopen=, cert-authority, ...)
// is refused with an error naming the file and line, rather than silently ignored.
func LoadAuthorizedKeys(path string) ([]AuthorizedKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sshserve: %w", err)
	}
	return ParseAuthorizedKeys(path, data)
}

// ParseAuthorizedKeys parses authorized_keys content; name is used in errors as the
// file name. See LoadAuthorizedKeys.
func ParseAuthorizedKeys(name string, data []byte) ([]AuthorizedKey, error) {
	var keys []AuthorizedKey
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, err := parseAuthorizedKeyLine(line)
		src := fmt.Sprintf("%s:%d", name, n+1)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrAuthorizedKeys, src, err)
		}
		k.Source = src
		keys = append(keys, k)
	}
	return keys, nil
}

func parseAuthorizedKeyLine(line []byte) (AuthorizedKey, error) {
	pub, comment, options, rest, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return AuthorizedKey{}, err
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return AuthorizedKey{}, errors.New("more than one key on the line")
	}
	k := AuthorizedKey{Key: pub, Comment: comment}
	for _, opt := range options {
		name, value, hasValue := strings.Cut(opt, "=")
		switch lname := strings.ToLower(name); {
		case lname == "restrict" && !hasValue:
			k.Restrict = true
		case impliedOptions[lname] && !hasValue:
		case lname == "from" && hasValue:
			if k.From != nil {
				return AuthorizedKey{}, errors.New("more than one from= option")
			}
			if k.From, err = parseFrom(value); err != nil {
				return AuthorizedKey{}, err
			}
		default:
			return AuthorizedKey{}, fmt.Errorf("option %q is not supported (only restrict and from=\"CIDR,...\" are)", printable(opt))
		}
	}
	return k, nil
}

// parseFrom parses the quoted value of a from= option.
func parseFrom(value string) ([]AddrPattern, error) {
	if len(value) < 2 || value[0] != '"' || value[len(value)-1] != '"' {
		return nil, fmt.Errorf("from= value must be quoted: %q", printable(value))
	}
	var pats []AddrPattern
	for _, f := range strings.Split(value[1:len(value)-1], ",") {
		f = strings.TrimSpace(f)
		neg := strings.HasPrefix(f, "!")
		f = strings.TrimPrefix(f, "!")
		var p netip.Prefix
		var err error
		if strings.Contains(f, "/") {
			p, err = netip.ParsePrefix(f)
			if err == nil && p != p.Masked() {
				err = errors.New("address has bits set beyond the prefix length")
			}
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(f)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return nil, fmt.Errorf("from= pattern %q is not an IP address or CIDR block (host names and wildcards are not supported): %v", printable(f), err)
		}
		pats = append(pats, AddrPattern{Prefix: p, Negated: neg})
	}
	return pats, nil
}

// AllowsFrom reports whether a client at addr may use the key: true when the line
// has no from= option; otherwise, as OpenSSH decides, false when a negated pattern
// matches, true when a plain one does, false when none does.
func (k *AuthorizedKey) AllowsFrom(addr net.Addr) bool {
	if len(k.From) == 0 {
		return true
	}
	ip, ok := addrIP(addr)
	if !ok {
		return false
	}
	allowed := false
	for _, p := range k.From {
		if p.Prefix.Contains(ip) {
			if p.Negated {
				return false
			}
			allowed = true
		}
	}
	return allowed
}

// addrIP returns the IP address of addr, with IPv4-mapped IPv6 addresses unmapped.
func addrIP(addr net.Addr) (netip.Addr, bool) {
	var ip netip.Addr
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	return ip.Unmap(), ip.IsValid()
}

// AuthorizedKeysCallback returns a PublicKeyCallback that accepts the keys in keys
// (from addresses their from= option allows) and maps each to the principal that
// principal returns for it. It suits small servers and tests; larger ones look keys
// up in their own store.
func AuthorizedKeysCallback(keys []AuthorizedKey, principal func(AuthorizedKey) Principal) PublicKeyCallback {
	byKey := make(map[string][]AuthorizedKey, len(keys))
	for _, k := range keys {
		m := string(k.Key.Marshal())
		byKey[m] = append(byKey[m], k)
	}
	return func(_ context.Context, conn ConnInfo, key ssh.PublicKey) (Principal, error) {
		for _, k := range byKey[string(key.Marshal())] {
			if k.AllowsFrom(conn.RemoteAddr) {
				return principal(k), nil
			}
		}
		return Principal{}, fmt.Errorf("sshserve: key %s is not authorized from %v", ssh.FingerprintSHA256(key), conn.RemoteAddr)
	}
}
