package props

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestPlaceholders(t *testing.T) {
	const file = `a=alpha
b=${a}-beta
c=${b}/${a}
withdef=${missing:fallback}
emptydef=${missing:}
nesteddef=${missing:${a}}
nestedname=${${sel}}
sel=a
envexact=${HOME_DIR}
envrelaxed=${my.env-var}
envdef=${NOT_SET:x}
stray=cost ${ 5
strayend=${a} and ${
brace=}{$}
colon=${url:http://h:80/p}
url=https://example.com
loop1=${loop2}
loop2=${loop1}
self=${self}
missing1=${nothing}
deepmissing=${missing1}
`
	p := New(mustParse(t, file), []string{"HOME_DIR=/home/git", "MY_ENV_VAR=relaxed", "a=env-loses"})
	tests := []struct {
		key, want, errPart string
	}{
		{"b", "alpha-beta", ""},
		{"c", "alpha-beta/alpha", ""},
		{"withdef", "fallback", ""},
		{"emptydef", "", ""},
		{"nesteddef", "alpha", ""},
		{"nestedname", "alpha", ""},
		{"envexact", "/home/git", ""},
		{"envrelaxed", "relaxed", ""},
		{"envdef", "x", ""},
		{"stray", "cost ${ 5", ""},
		{"strayend", "alpha and ${", ""},
		{"brace", "}{$}", ""},
		{"colon", "https://example.com", ""},
		{"loop1", "", "circular reference"},
		{"self", "", "circular reference"},
		{"missing1", "", "${nothing}"},
		{"deepmissing", "", "${nothing}"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, found, err := p.Resolve(tt.key)
			if !found {
				t.Fatalf("%s not found", tt.key)
			}
			if tt.errPart != "" {
				var pe *PlaceholderError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("Resolve(%s) = %q, %v; want a *PlaceholderError containing %q", tt.key, got, err, tt.errPart)
				}
				if pe.Key != tt.key || pe.Source.File != "t.properties" || pe.Source.Line == 0 {
					t.Errorf("error names %s at %s, want %s with its line", pe.Key, pe.Source, tt.key)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Resolve(%s) = %q, %v; want %q", tt.key, got, err, tt.want)
			}
		})
	}
	if _, found, err := p.Resolve("not.set"); found || err != nil {
		t.Errorf("Resolve of a missing key: found %v, err %v", found, err)
	}
}

func TestPlaceholderProblemInConfig(t *testing.T) {
	p := New(mustParse(t, "server.port=7990\nserver.proxy-name=${PROXY_HOST}\nplugin.ssh.port=${SSH_PORT:7998}\n"), []string{})
	c, err := p.Config()
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 {
		t.Fatalf("Config() error = %v, want one problem", err)
	}
	if ps[0].Key != KeyServerProxyName || ps[0].Source.String() != "t.properties:2" || ps[0].Fix == "" {
		t.Errorf("problem = %+v", ps[0])
	}
	if c.SSH.Port != 7998 || c.Server.Port != 7990 {
		t.Errorf("other keys were affected: ssh %d, http %d", c.SSH.Port, c.Server.Port)
	}
}

func TestPlaceholderExpansionBounded(t *testing.T) {
	var b strings.Builder
	for i := range 40 {
		fmt.Fprintf(&b, "k%d=${k%d}${k%d}\n", i, i+1, i+1)
	}
	b.WriteString("k40=xxxxxxxx\nserver.port=7991\n")
	p := New(mustParse(t, b.String()), []string{})
	_, _, err := p.Resolve("k0")
	if err == nil || !strings.Contains(err.Error(), "more than 1 MiB") {
		t.Errorf("Resolve(k0) = %v, want the expansion limit", err)
	}
	if v, _, err := p.Resolve("k30"); err != nil || len(v) != 8<<10 {
		t.Errorf("Resolve(k30) = %d bytes, %v", len(v), err)
	}
}
