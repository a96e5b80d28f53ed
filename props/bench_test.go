package props

import (
	"fmt"
	"strings"
	"testing"

	mprops "github.com/magiconair/properties"
)

// benchFile returns a 10,000-line properties file in the style of
// bitbucket.properties: comments, blank lines, separators of every kind,
// escapes, a few continuations and non-ASCII text.
func benchFile() []byte {
	var b strings.Builder
	for i := range 10000 {
		switch i % 10 {
		case 0:
			fmt.Fprintf(&b, "# section %d: settings for component number %d\n", i/10, i)
		case 1:
			b.WriteString("\n")
		case 2:
			fmt.Fprintf(&b, "plugin.component%d.enabled=true\n", i)
		case 3:
			fmt.Fprintf(&b, "server.component%d.url = https://host%d.example.com:8443/context/path\n", i, i)
		case 4:
			fmt.Fprintf(&b, "setup.component%d.displayName : Caf\u00e9 \u00c9quipe %d\n", i, i)
		case 5:
			fmt.Fprintf(&b, "plugin.component%d.list=aes128-cbc,\\\n", i)
		case 6:
			b.WriteString("    3des-cbc,blowfish-cbc\n")
		case 7:
			fmt.Fprintf(&b, "plugin.component%d.escaped=tab\\there\\u00e9 colon\\: done\n", i)
		case 8:
			fmt.Fprintf(&b, "plugin.component%d.interval 180s\n", i)
		case 9:
			fmt.Fprintf(&b, "! another comment style %d\n", i)
		}
	}
	return []byte(b.String())
}

// BenchmarkLoad reads the same 10,000-line file with this package's reader and
// with magiconair's loader (expansion disabled) in the same run.
func BenchmarkLoad(b *testing.B) {
	data := benchFile()
	if n := strings.Count(string(data), "\n"); n != 10000 {
		b.Fatalf("bench file has %d lines", n)
	}
	b.Run("props", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			f, err := Parse("bench.properties", data)
			if err != nil {
				b.Fatal(err)
			}
			if len(f.Entries()) != 6000 {
				b.Fatalf("%d entries", len(f.Entries()))
			}
		}
	})
	b.Run("props+env", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		environ := []string{"SERVER_PORT=8000", "HOME=/root", "PATH=/usr/bin:/bin"}
		for b.Loop() {
			f, err := Parse("bench.properties", data)
			if err != nil {
				b.Fatal(err)
			}
			if e, _ := New(f, environ).Lookup("server.port"); e.Value != "8000" {
				b.Fatalf("server.port = %q", e.Value)
			}
		}
	})
	b.Run("magiconair", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		l := &mprops.Loader{Encoding: mprops.UTF8, DisableExpansion: true}
		for b.Loop() {
			p, err := l.LoadBytes(data)
			if err != nil {
				b.Fatal(err)
			}
			if p.Len() != 6000 {
				b.Fatalf("%d entries", p.Len())
			}
		}
	})
}
