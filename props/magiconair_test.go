package props

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	mprops "github.com/magiconair/properties"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// magiconairLoad reads in with magiconair's own loader, expansion disabled.
func magiconairLoad(in string) (map[string]string, error) {
	l := &mprops.Loader{Encoding: mprops.UTF8, DisableExpansion: true}
	p, err := l.LoadBytes([]byte(in))
	if err != nil {
		return nil, err
	}
	return p.Map(), nil
}

// TestMagiconairDeviations shows, for each way magiconair's reader differs from
// Java, that it does differ on the input and that this package's Properties
// give the Java result.
func TestMagiconairDeviations(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		key   string
		java  string // the JDK's value for key
		check func(t *testing.T, m map[string]string, err error)
	}{
		{
			name: "CRLF continuation", in: "k=a\\\r\n  b\r\n", key: "k", java: "ab",
			check: func(t *testing.T, m map[string]string, err error) {
				if err == nil && m["k"] == "ab" {
					t.Errorf("magiconair now continues CRLF lines: %q", m)
				}
			},
		},
		{
			// magiconair's loader leaks its lexer goroutine on this input, so it
			// runs in a child process: see TestMagiconairEmptyKeyLeak.
			name: "empty key", in: "=v\n", key: "", java: "v",
		},
		{
			name: "backslash at end of file", in: "k=v\\", key: "k", java: "v",
			check: func(t *testing.T, m map[string]string, err error) {
				if err == nil && m["k"] == "v" {
					t.Errorf("magiconair now drops a final backslash: %q", m)
				}
			},
		},
		{
			name: "surrogate pair escapes", in: "k=\\uD83D\\uDE00\n", key: "k", java: "\U0001F600",
			check: func(t *testing.T, m map[string]string, err error) {
				if err == nil && m["k"] == "\U0001F600" {
					t.Errorf("magiconair now joins surrogate pairs: %q", m)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.check != nil {
				m, err := magiconairLoad(tt.in)
				tt.check(t, m, err)
			}
			f, err := Parse("t.properties", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			p := New(f, []string{})
			if got, ok := p.Get(tt.key); !ok || got != tt.java {
				t.Errorf("Get(%q) = %q, %v; Java gives %q", tt.key, got, ok, tt.java)
			}
		})
	}
}

// TestMagiconairExpansion shows that magiconair expands ${...} by default and
// in sets returned by Filter*, while Properties keeps raw values raw and
// resolves Spring placeholders (with defaults) only on request.
func TestMagiconairExpansion(t *testing.T) {
	const in = "a=x\nb=${a}\nc=${missing:fallback}\n"
	mp, err := mprops.LoadString(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := mp.GetString("b", ""); got != "x" {
		t.Errorf("magiconair default expansion: b = %q, want it expanded to x", got)
	}
	if _, err := mprops.LoadString("a=${a}\n"); err == nil {
		t.Error("magiconair's default loader accepted a self-reference it used to reject")
	}
	mp.DisableExpansion = true
	if fp := mp.FilterPrefix("b"); !fp.DisableExpansion {
		if got := fp.GetString("b", ""); got == "${a}" {
			t.Errorf("FilterPrefix re-enabled expansion but b is still raw")
		}
	} else {
		t.Log("magiconair's FilterPrefix now keeps DisableExpansion")
	}

	f, err := Parse("t.properties", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	p := New(f, []string{})
	if got, _ := p.Get("b"); got != "${a}" {
		t.Errorf("Get(b) = %q, want the raw ${a}", got)
	}
	if got, _, err := p.Resolve("b"); err != nil || got != "x" {
		t.Errorf("Resolve(b) = %q, %v; want x", got, err)
	}
	if got, _, err := p.Resolve("c"); err != nil || got != "fallback" {
		t.Errorf("Resolve(c) = %q, %v; want fallback (Spring default syntax)", got, err)
	}
	// A self-reference only fails the key that holds it, and only when resolved.
	f2, err := Parse("t.properties", []byte("a=${a}\nserver.port=7991\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(f2, []string{}).Config()
	if err != nil || c.Server.Port != 7991 {
		t.Errorf("Config() = %+v, %v; an unrelated self-reference must not matter", c, err)
	}
}

// TestMagiconairDecodeLists shows that magiconair's Decode splits lists at
// ';' where Bitbucket's lists use ','; Config splits at ','.
func TestMagiconairDecodeLists(t *testing.T) {
	const in = "plugin.ssh.disabled.macs=hmac-sha1,hmac-md5\n"
	mp, err := mprops.LoadString(in)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		MACs []string `properties:"plugin.ssh.disabled.macs"`
	}
	if err := mp.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if len(v.MACs) == 2 {
		t.Errorf("magiconair's Decode now splits at commas: %q", v.MACs)
	}
	f, err := Parse("t.properties", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(f, []string{}).Config()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.SSH.DisabledMACs; len(got) != 2 || got[0] != "hmac-sha1" || got[1] != "hmac-md5" {
		t.Errorf("DisabledMACs = %q", got)
	}
}

// TestNoFatalNoGoroutineOnParseError shows that a file Java rejects is an
// error value (magiconair's Must* would call log.Fatal and exit), and that
// neither a failed parse nor a failed load leaves a goroutine behind
// (magiconair's lexer runs in one).
func TestNoFatalNoGoroutineOnParseError(t *testing.T) {
	testutil.CheckNoLeaks(t)
	before := runtime.NumGoroutine()
	bad := []string{"k=\\u12\n", "a=b\nk=\\uZZZZ\n", "x=\\u"}
	for _, in := range bad {
		_, err := Parse("bad.properties", []byte(in))
		var pe *ParseError
		if err == nil || !errorsAs(err, &pe) {
			t.Fatalf("Parse(%q) = %v, want a *ParseError", in, err)
		}
	}
	home := testutil.NewHome(t)
	home.WriteProperties(t, "server.port=1\nbroken=\\u00G0\n")
	if _, err := Load(t.Context(), home.Dir, LoadOptions{Environ: []string{}}); err == nil {
		t.Fatal("Load accepted a malformed \\u escape")
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("goroutines: %d before, %d after the failed parses", before, n)
	}
}

const childEnv = "GITFLEET_PROPS_MAGICONAIR_CHILD"

// TestMagiconairEmptyKeyLeak runs magiconair's loader on "=v" in a child
// process and shows that it fails and leaves its lexer goroutine blocked,
// while Parse reads the empty key and starts no goroutine at all.
func TestMagiconairEmptyKeyLeak(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		before := runtime.NumGoroutine()
		_, err := magiconairLoad("=v\n")
		time.Sleep(100 * time.Millisecond)
		out, _ := json.Marshal(map[string]any{"err": fmt.Sprint(err), "leaked": runtime.NumGoroutine() - before})
		fmt.Println(string(out))
		os.Exit(0) // the goroutine left behind would fail VerifyMain
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMagiconairEmptyKeyLeak$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var res struct {
		Err    string
		Leaked int
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("child output %q: %v", out, err)
	}
	t.Logf("magiconair on %q: error %q, %d goroutine(s) left behind", "=v", res.Err, res.Leaked)
	if res.Err == "<nil>" {
		t.Errorf("magiconair now reads =v; update the package documentation")
	}
	before := runtime.NumGoroutine()
	f := mustParse(t, "=v\n")
	if e := f.Entries(); len(e) != 1 || e[0].Key != "" || e[0].Value != "v" {
		t.Errorf("Parse(=v) = %v, want the empty key with value v", e)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("Parse started %d goroutines", n-before)
	}
}

// TestNoFatalPathsInPackage checks the package's own sources: they import
// neither "log" nor "os/exec", and call none of magiconair's Must* functions
// (log.Fatal), Filter* functions (expansion back on), or its reader.
func TestNoFatalPathsInPackage(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); p == "log" || p == "os/exec" {
				t.Errorf("%s imports %s", name, p)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || isIdent(sel.X, "regexp") {
				return true
			}
			switch s := sel.Sel.Name; {
			case strings.HasPrefix(s, "Must"), strings.HasPrefix(s, "Filter"),
				s == "LoadBytes", s == "LoadString", s == "LoadFile", s == "LoadReader", s == "LoadAll", s == "Load" && isIdent(sel.X, "mprops"):
				t.Errorf("%s: %s uses %s", fset.Position(sel.Pos()), name, s)
			}
			return true
		})
	}
	if checked == 0 {
		t.Fatal("no package sources checked")
	}
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}
