package portfwd

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseConfig checks that the parser never panics, that every error is a
// *ConfigError whose diagnostics carry a line, and that what it accepts is
// a Config that passes Validate and can build a Forwarder.
func FuzzParseConfig(f *testing.F) {
	for _, seed := range []string{
		"global\n maxconn 10\nfrontend f\n bind :7999\n default_backend b\nbackend b\n server s 127.0.0.1:22 check send-proxy-v2\n",
		"defaults\n timeout client 1h\n mode http\n",
		"listen l\n bind 127.0.0.1:0,127.0.0.1:0 accept-proxy\n balance source\n server a 1.2.3.4:5 backup weight 3\n",
		"backend \"b c\"\n server 's' 1.2.3.4:5 # comment\n",
		"frontend f\n bind :1\n defualt_backend x\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := ParseConfig(strings.NewReader(text), "fuzz.cfg")
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) {
				if strings.Contains(err.Error(), "token too long") {
					return
				}
				t.Fatalf("error %T %v is not a *ConfigError", err, err)
			}
			for _, d := range ce.Diagnostics {
				if d.Pos.File != "fuzz.cfg" {
					t.Fatalf("diagnostic without its file: %v", d)
				}
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed config fails Validate: %v", err)
		}
		if _, err := New(cfg, nil); err != nil {
			t.Fatalf("New: %v", err)
		}
	})
}
