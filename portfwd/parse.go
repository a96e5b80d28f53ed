package portfwd

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ParseFile reads the configuration file at path; see ParseConfig.
func ParseFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseConfig(f, path)
}

// ParseConfig reads an HAProxy configuration in the subset described in the
// package documentation. filename is used in diagnostics only. Every error
// found is reported in one *ConfigError (which matches ErrConfig), each with
// its file:line; keywords HAProxy accepts that make no difference here are
// returned in Config.Warnings.
func ParseConfig(r io.Reader, filename string) (*Config, error) {
	p := &parser{
		cfg:  &Config{},
		file: filename,
		defs: proxyDefaults{},
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		p.line++
		words, err := splitLine(sc.Text())
		if err != nil {
			p.errorf("%v", err)
			continue
		}
		if len(words) > 0 {
			p.directive(words)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("portfwd: reading %s: %w", filename, err)
	}
	p.finish()
	if len(p.errs) == 0 {
		if err := p.cfg.Validate(); err != nil {
			return nil, err
		}
		return p.cfg, nil
	}
	return nil, &ConfigError{Diagnostics: p.errs}
}

// proxyDefaults is what a defaults section passes on to later proxies.
type proxyDefaults struct {
	balance  Balance
	retries  int
	maxconn  int
	timeouts Timeouts
	// httpCheck is what "option httpchk" and "http-check" lines set.
	httpCheck httpCheckSettings
}

type sectionKind int

const (
	noSection sectionKind = iota
	globalSection
	defaultsSection
	frontendSection
	backendSection
	listenSection
)

func (k sectionKind) String() string {
	return [...]string{"", "global", "defaults", "frontend", "backend", "listen"}[k]
}

type parser struct {
	cfg  *Config
	file string
	line int
	errs []Diagnostic

	section sectionKind
	defs    proxyDefaults
	fe      *Frontend
	be      *Backend

	httpChecks map[*Backend]*httpCheckSettings // resolved into Backend.HTTPCheck by finish
}

func (p *parser) pos() Position { return Position{File: p.file, Line: p.line} }

func (p *parser) errorf(format string, args ...any) {
	p.errs = append(p.errs, Diagnostic{Pos: p.pos(), Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(format string, args ...any) {
	p.cfg.Warnings = append(p.cfg.Warnings, Diagnostic{Pos: p.pos(), Msg: fmt.Sprintf(format, args...)})
}

// Keywords of the sections and of the global section; ignored* keywords are
// accepted with a warning. The proxy sections' keywords are in keywords.go.
var (
	sectionWords = []string{"global", "defaults", "frontend", "backend", "listen"}
	globalWords  = []string{"maxconn"}

	ignoredGlobalWords = []string{"log", "daemon", "user", "group", "uid", "gid", "chroot", "pidfile",
		"quiet", "nbthread", "nbproc", "stats", "ulimit-n", "master-worker", "node", "description",
		"hard-stop-after", "spread-checks", "ca-base", "crt-base", "maxsslconn", "maxconnrate",
		"log-send-hostname", "log-tag", "cpu-map", "set-dumpable", "ssl-server-verify",
		"ssl-default-bind-ciphers", "ssl-default-bind-options", "ssl-default-server-ciphers",
		"ssl-default-server-options", "ssl-default-bind-ciphersuites", "ssl-default-server-ciphersuites"}
)

func (p *parser) directive(w []string) {
	kw := w[0]
	if slices.Contains(sectionWords, kw) {
		p.startSection(kw, w[1:])
		return
	}
	switch p.section {
	case noSection:
		p.unknown(kw, "out of section", sectionWords)
	case globalSection:
		p.global(w)
	default:
		p.proxy(w)
	}
}

func (p *parser) unknown(kw, where string, candidates []string) {
	if s := suggest(kw, candidates); s != "" {
		p.errorf("unknown keyword '%s' %s; did you mean '%s' maybe ?", kw, where, s)
		return
	}
	p.errorf("unknown keyword '%s' %s", kw, where)
}

func (p *parser) startSection(kw string, args []string) {
	p.fe, p.be = nil, nil
	switch kw {
	case "global":
		p.section = globalSection
	case "defaults":
		p.section = defaultsSection
		p.defs = proxyDefaults{}
	default:
		p.section = map[string]sectionKind{"frontend": frontendSection, "backend": backendSection, "listen": listenSection}[kw]
		if len(args) == 0 {
			p.errorf("'%s' expects <name> as an argument", kw)
			args = []string{""}
		} else if len(args) > 1 {
			p.errorf("'%s %s': extra arguments are not supported", kw, args[0])
		}
		name := args[0]
		if p.section != backendSection {
			for _, f := range p.cfg.Frontends {
				if f.Name == name && name != "" {
					p.errorf("%s '%s' has the same name as another frontend declared at %s", kw, name, f.Line)
				}
			}
			p.fe = &Frontend{Name: name, MaxConn: p.defs.maxconn, Timeouts: p.defs.timeouts, Line: p.pos()}
			p.cfg.Frontends = append(p.cfg.Frontends, p.fe)
		}
		if p.section != frontendSection {
			for _, b := range p.cfg.Backends {
				if b.Name == name && name != "" {
					p.errorf("%s '%s' has the same name as another backend declared at %s", kw, name, b.Line)
				}
			}
			p.be = &Backend{Name: name, Balance: p.defs.balance, Retries: p.defs.retries, Timeouts: p.defs.timeouts, Line: p.pos()}
			p.cfg.Backends = append(p.cfg.Backends, p.be)
			if d := p.defs.httpCheck; d.enabled || d.rules != nil {
				st := d.clone()
				p.httpCheckState()
				*p.httpChecks[p.be] = st
			}
		}
		if p.section == listenSection {
			p.fe.DefaultBackend = name
		}
	}
}

func (p *parser) global(w []string) {
	switch kw := w[0]; {
	case kw == "maxconn":
		p.cfg.Global.MaxConn = p.count(w, 1)
	case slices.Contains(ignoredGlobalWords, kw) || strings.HasPrefix(kw, "tune."):
		p.warnf("'%s' has no effect in portfwd; ignored", kw)
	default:
		p.unknown(kw, "in 'global' section", append(append([]string{}, globalWords...), ignoredGlobalWords...))
	}
}

// count parses w[i] as a non-negative integer.
func (p *parser) count(w []string, i int) int {
	if i >= len(w) {
		p.errorf("'%s' expects an integer argument", strings.Join(w[:i], " "))
		return 0
	}
	n, err := strconv.Atoi(w[i])
	if err != nil || n < 0 {
		p.errorf("'%s' expects a non-negative integer, got '%s'", strings.Join(w[:i], " "), w[i])
		return 0
	}
	return n
}

// finish resolves the HTTP checks and adds the warnings HAProxy gives about
// a whole configuration.
func (p *parser) finish() {
	for _, b := range p.cfg.Backends {
		st := p.httpChecks[b]
		switch {
		case st == nil:
		case st.enabled:
			b.HTTPCheck = st.check()
		case st.ruleAt.Line != 0:
			p.cfg.Warnings = append(p.cfg.Warnings, Diagnostic{Pos: st.ruleAt,
				Msg: fmt.Sprintf("backend '%s' uses http-check rules without 'option httpchk', so the rules are ignored", b.Name)})
		}
	}
	for _, f := range p.cfg.Frontends {
		if len(f.Binds) == 0 {
			p.cfg.Warnings = append(p.cfg.Warnings, Diagnostic{Pos: f.Line,
				Msg: fmt.Sprintf("frontend '%s' has no 'bind' directive", f.Name)})
		}
		if f.DefaultBackend == "" {
			p.cfg.Warnings = append(p.cfg.Warnings, Diagnostic{Pos: f.Line,
				Msg: fmt.Sprintf("frontend '%s' has no default_backend: its connections are closed", f.Name)})
		}
	}
}
