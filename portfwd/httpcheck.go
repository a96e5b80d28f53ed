package portfwd

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// This file holds HTTP health checks: HAProxy's "option httpchk",
// "http-check send" and "http-check expect" for TCP backends, their parsing
// and the check itself.

// HTTPCheck makes a backend's health checks HTTP requests ("option httpchk"),
// as HAProxy sends them on a TCP backend: once the check's connection is
// open, portfwd sends one request and reads the response's status line.
type HTTPCheck struct {
	// Method is the request method; empty means OPTIONS, HAProxy's default.
	Method string
	// URI is the request target; empty means "/".
	URI string
	// Version is the HTTP version of the request line; empty means
	// "HTTP/1.0". HTTP/1.1 servers want a Host header (see Headers).
	Version string
	// Headers are sent after the request line ("http-check send hdr"), in
	// order. Beyond HTTP/1.0, "Connection: close" is added unless a
	// Connection header is set.
	Headers []HTTPHeader
	// Expect decides which response statuses pass; nil means any 2xx or 3xx.
	Expect *HTTPExpect
}

// HTTPHeader is one header field of an HTTP check request.
type HTTPHeader struct {
	Name, Value string
}

// HTTPExpect is an "http-check expect status" or "rstatus" rule: which
// response status codes pass.
type HTTPExpect struct {
	// Negate inverts the rule ("http-check expect ! status 500-599").
	Negate bool
	// Status lists the codes and ranges that match ("status 200,300-399").
	Status []StatusRange
	// Regexp, when not nil, matches the status code as three digits
	// ("rstatus ^2"); it is Go's RE2 syntax, a subset of HAProxy's PCRE.
	Regexp *regexp.Regexp
}

// StatusRange is a range of HTTP status codes, Min to Max inclusive.
type StatusRange struct {
	Min, Max int
}

// Match reports whether a response with status code passes the rule.
func (e *HTTPExpect) Match(code int) bool {
	ok := false
	if e.Regexp != nil {
		ok = e.Regexp.MatchString(strconv.Itoa(code))
	}
	for _, r := range e.Status {
		if code >= r.Min && code <= r.Max {
			ok = true
		}
	}
	return ok != e.Negate
}

func (h *HTTPCheck) method() string  { return orString(h.Method, "OPTIONS") }
func (h *HTTPCheck) uri() string     { return orString(h.URI, "/") }
func (h *HTTPCheck) version() string { return orString(h.Version, "HTTP/1.0") }

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// clone returns a copy that can be changed without changing h.
func (h *HTTPCheck) clone() *HTTPCheck {
	c := *h
	c.Headers = append([]HTTPHeader(nil), h.Headers...)
	return &c
}

// request returns the bytes of the check's request.
func (h *HTTPCheck) request() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s\r\n", h.method(), h.uri(), h.version())
	conn := false
	for _, hd := range h.Headers {
		fmt.Fprintf(&b, "%s: %s\r\n", hd.Name, hd.Value)
		conn = conn || strings.EqualFold(hd.Name, "Connection")
	}
	if !conn && h.version() != "HTTP/1.0" {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// validate returns what is wrong with h, or "".
func (h *HTTPCheck) validate() string {
	if strings.ContainsAny(h.Method, " \t\r\n") {
		return fmt.Sprintf("invalid HTTP check method %q", h.Method)
	}
	if strings.ContainsAny(h.URI, " \t\r\n") {
		return fmt.Sprintf("invalid HTTP check URI %q", h.URI)
	}
	if h.Version != "" && !strings.HasPrefix(h.Version, "HTTP/") || strings.ContainsAny(h.Version, " \t\r\n") {
		return fmt.Sprintf("invalid HTTP check version %q (want HTTP/1.0 or HTTP/1.1)", h.Version)
	}
	for _, hd := range h.Headers {
		if hd.Name == "" || strings.ContainsAny(hd.Name, " \t\r\n:") || strings.ContainsAny(hd.Value, "\r\n") {
			return fmt.Sprintf("invalid HTTP check header %q", hd.Name+": "+hd.Value)
		}
	}
	if e := h.Expect; e != nil {
		if e.Regexp == nil && len(e.Status) == 0 {
			return "'http-check expect' has no status to match"
		}
		for _, r := range e.Status {
			if r.Min < 100 || r.Max > 999 || r.Min > r.Max {
				return fmt.Sprintf("invalid HTTP status range %d-%d", r.Min, r.Max)
			}
		}
	}
	return ""
}

// CheckError is a failed HTTP health check that got a response: the status
// the server answered, which the rule did not accept.
type CheckError struct {
	// Status is the response's status line after the version, as "503
	// Service Unavailable".
	Status string
}

func (e *CheckError) Error() string { return "HTTP check: response " + e.Status }

// httpProbe sends the check's request on conn and reads the status line,
// within deadline.
func (h *HTTPCheck) probe(conn net.Conn, deadline time.Time) error {
	conn.SetDeadline(deadline)
	if _, err := conn.Write(h.request()); err != nil {
		return fmt.Errorf("HTTP check: send: %w", err)
	}
	r := bufio.NewReaderSize(conn, 512)
	line, err := r.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("HTTP check: no status line: %w", err)
	}
	code, status, ok := parseStatusLine(string(line))
	if !ok {
		return fmt.Errorf("HTTP check: invalid status line %q", strings.TrimRight(string(line), "\r\n"))
	}
	pass := code >= 200 && code < 400
	if h.Expect != nil {
		pass = h.Expect.Match(code)
	}
	if !pass {
		return &CheckError{Status: status}
	}
	return nil
}

// parseStatusLine reads "HTTP/1.x NNN reason".
func parseStatusLine(line string) (code int, status string, ok bool) {
	line = strings.TrimRight(line, "\r\n")
	proto, status, found := strings.Cut(line, " ")
	if !found || !strings.HasPrefix(proto, "HTTP/") || len(status) < 3 {
		return 0, "", false
	}
	code, err := strconv.Atoi(status[:3])
	if err != nil || code < 100 || (len(status) > 3 && status[3] != ' ') {
		return 0, "", false
	}
	return code, status, true
}

// httpCheckOption reads "option httpchk [[<method>] <uri> [<version>]]".
func (p *parser) httpCheckOption(w []string) {
	args := w[2:]
	h := &HTTPCheck{}
	switch len(args) {
	case 0:
	case 1:
		h.URI = args[0]
	case 2:
		h.Method, h.URI = args[0], args[1]
	case 3:
		h.Method, h.URI, h.Version = args[0], args[1], args[2]
	default:
		p.errorf("'option httpchk' cannot handle unexpected argument '%s'", args[3])
		return
	}
	if strings.ContainsAny(h.Version, "\r\n") {
		p.errorf("'option httpchk': headers after the version are not supported; use 'http-check send hdr <name> <value>'")
		return
	}
	if msg := h.validate(); msg != "" {
		p.errorf("'option httpchk': %s", msg)
		return
	}
	st := p.httpCheckState()
	if st == nil {
		p.warnf("'option httpchk' ignored: frontend '%s' has no backend capability", p.fe.Name)
		return
	}
	st.enabled = true
	hc := st.check()
	hc.Method, hc.URI, hc.Version = h.Method, h.URI, h.Version
}

// httpCheckSettings is what a defaults section or a backend has read of
// "option httpchk" and "http-check" so far.
type httpCheckSettings struct {
	enabled bool       // "option httpchk" was given
	rules   *HTTPCheck // what option httpchk and http-check lines set
	ruleAt  Position   // the first http-check line, for the warning when not enabled
	// inherited is set while a proxy holds the rules of its defaults
	// section: its own first http-check line replaces them.
	inherited bool
}

func (s *httpCheckSettings) check() *HTTPCheck {
	if s.rules == nil {
		s.rules = &HTTPCheck{}
	}
	return s.rules
}

// clone returns a copy for a proxy that inherits s from defaults.
func (s httpCheckSettings) clone() httpCheckSettings {
	if s.rules != nil {
		s.rules = s.rules.clone()
	}
	s.inherited = true
	return s
}

// ownRule is called before a proxy's own http-check line: the rules it
// inherited from defaults give way to its own.
func (s *httpCheckSettings) ownRule() {
	if !s.inherited {
		return
	}
	s.inherited = false
	if s.rules != nil {
		s.rules.Headers, s.rules.Expect = nil, nil
	}
}

// httpCheckState returns the settings the current section changes: the
// defaults' or the backend's; nil in a frontend.
func (p *parser) httpCheckState() *httpCheckSettings {
	switch {
	case p.section == defaultsSection:
		return &p.defs.httpCheck
	case p.be != nil:
		if p.httpChecks == nil {
			p.httpChecks = map[*Backend]*httpCheckSettings{}
		}
		st := p.httpChecks[p.be]
		if st == nil {
			st = &httpCheckSettings{}
			p.httpChecks[p.be] = st
		}
		return st
	}
	return nil
}

// Keywords of http-check lines.
var (
	httpCheckWords       = []string{"send", "expect"}
	httpCheckSendWords   = []string{"meth", "uri", "ver", "hdr"}
	httpCheckExpectWords = []string{"status", "rstatus"}
)

// httpCheck reads "http-check send ..." and "http-check expect ...".
func (p *parser) httpCheck(w []string) {
	if len(w) < 2 {
		p.errorf("'http-check' expects 'send' or 'expect'")
		return
	}
	st := p.httpCheckState()
	if st != nil && p.section != defaultsSection && (w[1] == "send" || w[1] == "expect") {
		st.ownRule()
	}
	switch w[1] {
	case "send":
		h := &HTTPCheck{}
		for i := 2; i < len(w); i++ {
			kw := w[i]
			if !contains(httpCheckSendWords, kw) {
				switch kw {
				case "uri-lf", "body", "body-lf", "comment":
					p.errorf("'http-check send %s' is not supported by portfwd (supported: %s)", kw, strings.Join(httpCheckSendWords, ", "))
				default:
					p.unknown(kw, "in 'http-check send'", httpCheckSendWords)
				}
				return
			}
			n := 1
			if kw == "hdr" {
				n = 2
			}
			if i+n >= len(w) {
				p.errorf("'http-check send %s' expects %d argument(s)", kw, n)
				return
			}
			switch kw {
			case "meth":
				h.Method = w[i+1]
			case "uri":
				h.URI = w[i+1]
			case "ver":
				h.Version = w[i+1]
			case "hdr":
				h.Headers = append(h.Headers, HTTPHeader{Name: w[i+1], Value: w[i+2]})
			}
			i += n
		}
		if msg := h.validate(); msg != "" {
			p.errorf("'http-check send': %s", msg)
			return
		}
		if st == nil {
			p.warnf("'http-check' ignored: frontend '%s' has no backend capability", p.fe.Name)
			return
		}
		if st.rules == nil || st.ruleAt.Line == 0 {
			st.ruleAt = p.pos()
		}
		hc := st.check()
		if h.Method != "" {
			hc.Method = h.Method
		}
		if h.URI != "" {
			hc.URI = h.URI
		}
		if h.Version != "" {
			hc.Version = h.Version
		}
		hc.Headers = append(hc.Headers, h.Headers...)
	case "expect":
		e := p.httpExpect(w[2:])
		if e == nil {
			return
		}
		if st == nil {
			p.warnf("'http-check' ignored: frontend '%s' has no backend capability", p.fe.Name)
			return
		}
		if st.rules != nil && st.rules.Expect != nil {
			p.errorf("'http-check expect': portfwd supports one expect rule per backend (a second one was given)")
			return
		}
		if st.ruleAt.Line == 0 {
			st.ruleAt = p.pos()
		}
		st.check().Expect = e
	case "connect", "comment", "disable-on-404", "send-state", "set-var", "unset-var":
		p.errorf("'http-check %s' is not supported by portfwd (supported: http-check send, http-check expect status|rstatus)", w[1])
	default:
		p.unknown(w[1], "in 'http-check'", httpCheckWords)
	}
}

// httpExpect reads the arguments of "http-check expect": [!] status <codes>
// or [!] rstatus <regex>.
func (p *parser) httpExpect(args []string) *HTTPExpect {
	e := &HTTPExpect{}
	if len(args) > 0 && args[0] == "!" {
		e.Negate, args = true, args[1:]
	} else if len(args) > 0 && strings.HasPrefix(args[0], "!") {
		e.Negate, args[0] = true, args[0][1:]
	}
	if len(args) < 2 {
		p.errorf("'http-check expect' expects a match ('status' or 'rstatus') and a pattern")
		return nil
	}
	if len(args) > 2 {
		p.errorf("'http-check expect %s': unexpected argument '%s' (portfwd supports 'http-check expect [!] status|rstatus <pattern>' only)", args[0], args[2])
		return nil
	}
	switch args[0] {
	case "status":
		for _, part := range strings.Split(args[1], ",") {
			lo, hi, isRange := strings.Cut(part, "-")
			if !isRange {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || a < 100 || b > 999 || a > b {
				p.errorf("'http-check expect status': invalid status code or range '%s' (want codes such as 200 or 200-399, separated by commas)", part)
				return nil
			}
			e.Status = append(e.Status, StatusRange{Min: a, Max: b})
		}
	case "rstatus":
		re, err := regexp.Compile(args[1])
		if err != nil {
			p.errorf("'http-check expect rstatus': regex '%s' is invalid: %v", args[1], err)
			return nil
		}
		e.Regexp = re
	case "hdr", "fhdr", "string", "rstring", "min-recv", "comment", "ok-status", "error-status", "tout-status", "on-success", "on-error", "status-code":
		p.errorf("'http-check expect %s' is not supported by portfwd: it checks the status only (use 'status' or 'rstatus')", args[0])
		return nil
	default:
		if s := suggest(args[0], httpCheckExpectWords); s != "" {
			p.errorf("'http-check expect': unknown match '%s'; did you mean '%s' maybe ?", args[0], s)
		} else {
			p.errorf("'http-check expect': unknown match '%s' (supported: status, rstatus)", args[0])
		}
		return nil
	}
	return e
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
