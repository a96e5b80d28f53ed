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

// FuzzHeaderSize checks the framing that decides how many bytes of a
// connection are its PROXY header: a size found is within the input, every
// shorter prefix is reported incomplete or bad (never a different size),
// and bytes after the header do not change the answer.
func FuzzHeaderSize(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 7999\r\nSSH-2.0-x\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x07\xc6\x33\x64\x01\x9c\x40\x1f\x3fdata"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		size, err := headerSize(b)
		if err != nil || size == 0 {
			return
		}
		if size > len(b) {
			t.Fatalf("size %d beyond the %d bytes given", size, len(b))
		}
		for k := range size {
			if s, err := headerSize(b[:k]); err == nil && s != 0 {
				t.Fatalf("prefix of %d bytes gives size %d, the whole header %d", k, s, size)
			}
		}
		if s, err := headerSize(append(b[:size:size], "trailing bytes"...)); err != nil || s != size {
			t.Fatalf("trailing bytes changed the size: %d, %v", s, err)
		}
	})
}
