package portfwd

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file reads the lines of the proxy sections: what parser.directive
// passes on for defaults, frontend, backend and listen, from mode and balance
// to bind and server lines.

// Keywords of the proxy sections (defaults, frontend, backend, listen) and of
// their timeout, option, bind and server lines; ignored* keywords are
// accepted with a warning.
var (
	proxyWords   = []string{"mode", "balance", "retries", "maxconn", "timeout", "option", "no", "bind", "default_backend", "server", "http-check"}
	timeoutWords = []string{"connect", "client", "server", "tunnel", "queue", "client-fin", "server-fin", "check"}
	serverWords  = []string{"check", "inter", "rise", "fall", "send-proxy", "send-proxy-v2", "maxconn", "maxqueue", "backup", "weight", "port",
		"check-ssl", "verify", "ca-file", "check-sni"}
	bindWords    = []string{"accept-proxy"}
	balanceWords = []string{"roundrobin", "leastconn", "source", "first"}

	ignoredProxyWords  = []string{"log", "description"}
	ignoredOptionWords = []string{"tcplog", "dontlognull", "redispatch", "tcpka", "clitcpka",
		"srvtcpka", "log-health-checks", "splice-auto", "splice-request", "splice-response",
		"abortonclose", "dontlog-normal", "logasap", "log-separate-errors", "nolinger", "socket-stats"}
	httpOptionWords = []string{"httplog", "forwardfor", "http-server-close", "httpclose",
		"http-keep-alive", "http-buffer-request"}
	ignoredServerWords = []string{"id"}
)

func (p *parser) proxy(w []string) {
	kw, sec := w[0], p.section
	hasFE := sec == frontendSection || sec == listenSection
	hasBE := sec == backendSection || sec == listenSection
	where := fmt.Sprintf("in '%s' section", sec)
	switch kw {
	case "mode":
		switch {
		case len(w) < 2:
			p.errorf("'mode' expects 'tcp'")
		case w[1] == "tcp":
		case w[1] == "http":
			p.errorf("'mode http' is not supported: portfwd forwards TCP only (use 'mode tcp')")
		default:
			p.errorf("unknown proxy mode '%s' (portfwd supports 'tcp' only)", w[1])
		}
	case "balance":
		b := p.balance(w)
		switch {
		case sec == defaultsSection:
			p.defs.balance = b
		case hasBE:
			p.be.Balance = b
		default:
			p.warnf("'balance' ignored: frontend '%s' has no backend capability", p.fe.Name)
		}
	case "retries":
		n := p.count(w, 1)
		if n == 0 {
			n = -1 // an explicit "retries 0"
		}
		switch {
		case sec == defaultsSection:
			p.defs.retries = n
		case hasBE:
			p.be.Retries = n
		default:
			p.warnf("'retries' ignored: frontend '%s' has no backend capability", p.fe.Name)
		}
	case "maxconn":
		n := p.count(w, 1)
		switch {
		case sec == defaultsSection:
			p.defs.maxconn = n
		case hasFE:
			p.fe.MaxConn = n
		default:
			p.warnf("'maxconn' ignored: backend '%s' has no frontend capability", p.be.Name)
		}
	case "timeout":
		p.timeout(w)
	case "option", "no":
		p.option(w)
	case "http-check":
		p.httpCheck(w)
	case "bind":
		if !hasFE {
			p.errorf("'bind' is not allowed %s", where)
			return
		}
		p.bind(w)
	case "default_backend":
		if !hasFE || sec == listenSection {
			p.errorf("'default_backend' is not allowed %s", where)
			return
		}
		if len(w) != 2 {
			p.errorf("'default_backend' expects a backend name")
			return
		}
		p.fe.DefaultBackend = w[1]
		p.fe.backendLine = p.pos()
	case "server":
		if !hasBE {
			p.errorf("'server' is not allowed %s", where)
			return
		}
		p.server(w)
	default:
		if slices.Contains(ignoredProxyWords, kw) {
			p.warnf("'%s' has no effect in portfwd; ignored", kw)
			return
		}
		p.unknown(kw, where, append(append([]string{}, proxyWords...), ignoredProxyWords...))
	}
}

func (p *parser) balance(w []string) Balance {
	if len(w) < 2 {
		p.errorf("'balance' expects one of %s", strings.Join(balanceWords, ", "))
		return ""
	}
	if w[1] == "static-rr" {
		p.warnf("'balance static-rr' is handled as 'roundrobin'")
		return RoundRobin
	}
	if !slices.Contains(balanceWords, w[1]) {
		if s := suggest(w[1], balanceWords); s != "" {
			p.errorf("'balance' supports %s; did you mean '%s' maybe ?", strings.Join(balanceWords, ", "), s)
		} else {
			p.errorf("'balance' supports %s, not '%s'", strings.Join(balanceWords, ", "), w[1])
		}
		return ""
	}
	return Balance(w[1])
}

func (p *parser) timeout(w []string) {
	if len(w) < 3 {
		p.errorf("'timeout' expects <kind> and <time>")
		return
	}
	d, err := ParseTime(w[2])
	if err != nil {
		p.errorf("'timeout %s': %v", w[1], err)
		return
	}
	var t *Timeouts
	switch {
	case p.section == defaultsSection:
		t = &p.defs.timeouts
	case p.fe != nil && p.be != nil:
		// a listen section: set both halves
		p.setTimeout(&p.fe.Timeouts, w[1], d)
		t = &p.be.Timeouts
	case p.fe != nil:
		t = &p.fe.Timeouts
	default:
		t = &p.be.Timeouts
	}
	p.setTimeout(t, w[1], d)
}

func (p *parser) setTimeout(t *Timeouts, kind string, d time.Duration) {
	switch kind {
	case "connect":
		t.Connect = d
	case "client":
		t.Client = d
	case "server":
		t.Server = d
	case "tunnel":
		t.Tunnel = d
	case "queue":
		t.Queue = d
	case "client-fin":
		t.ClientFin = d
	case "server-fin":
		t.ServerFin = d
	case "check":
		t.Check = d
	case "http-request", "http-keep-alive", "tarpit":
		p.warnf("'timeout %s' applies to HTTP only; ignored", kind)
	default:
		if s := suggest(kind, timeoutWords); s != "" {
			p.errorf("'timeout %s': unknown timeout; did you mean '%s' maybe ?", kind, s)
		} else {
			p.errorf("'timeout %s': unknown timeout (supported: %s)", kind, strings.Join(timeoutWords, ", "))
		}
	}
}

func (p *parser) option(w []string) {
	no := w[0] == "no"
	if no {
		if len(w) < 2 || w[1] != "option" {
			p.errorf("'no' expects 'option <name>'")
			return
		}
		w = w[1:]
	}
	if len(w) < 2 {
		p.errorf("'option' expects an option name")
		return
	}
	switch name := w[1]; {
	case name == "httpchk" && no:
		if st := p.httpCheckState(); st != nil {
			st.enabled = false
		}
	case name == "httpchk":
		p.httpCheckOption(w)
	case slices.Contains(ignoredOptionWords, name):
		p.warnf("'option %s' has no effect in portfwd; ignored", name)
	case slices.Contains(httpOptionWords, name):
		p.warnf("'option %s' applies to HTTP mode only; ignored", name)
	default:
		if s := suggest(name, append(append([]string{"httpchk"}, ignoredOptionWords...), httpOptionWords...)); s != "" {
			p.errorf("unknown option '%s'; did you mean '%s' maybe ?", name, s)
		} else {
			p.errorf("unknown option '%s'", name)
		}
	}
}

func (p *parser) bind(w []string) {
	if len(w) < 2 {
		p.errorf("'bind' expects [address]:port")
		return
	}
	accept := false
	for i := 2; i < len(w); i++ {
		switch w[i] {
		case "accept-proxy":
			accept = true
		case "name":
			i++
			p.warnf("bind option 'name' has no effect in portfwd; ignored")
		default:
			p.unknown(w[i], "in 'bind' line", bindWords)
		}
	}
	for _, a := range strings.Split(w[1], ",") {
		addr, err := parseBindAddr(a)
		if err != nil {
			p.errorf("'bind %s': %v", a, err)
			continue
		}
		p.fe.Binds = append(p.fe.Binds, Bind{Addr: addr, AcceptProxy: accept})
	}
}

// parseBindAddr turns "*:7999", ":7999", "1.2.3.4:7999" or "[::1]:7999" into
// a Go listen address.
func parseBindAddr(a string) (string, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", fmt.Errorf("invalid address: expected [address]:port")
	}
	if host == "*" {
		host = ""
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		// Binding a name would need a resolver at parse time; HAProxy
		// resolves it, portfwd asks for the address.
		return "", fmt.Errorf("bind address '%s' must be an IP address, '*' or empty", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("invalid port '%s'", port)
	}
	return net.JoinHostPort(host, port), nil
}

func (p *parser) server(w []string) {
	if len(w) < 3 {
		p.errorf("'server' expects <name> and <addr>[:<port>] as arguments")
		return
	}
	s := &Server{Name: w[1], Addr: w[2], Line: p.pos()}
	if _, port, err := net.SplitHostPort(s.Addr); err != nil || port == "" {
		p.errorf("'server %s/%s': address '%s' needs a port (portfwd does not reuse the client's port)", p.be.Name, s.Name, s.Addr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		p.errorf("'server %s/%s': invalid port '%s'", p.be.Name, s.Name, port)
	}
	for i := 3; i < len(w); i++ {
		kw := w[i]
		arg := func() string {
			if i+1 >= len(w) {
				p.errorf("'server %s/%s': '%s' expects an argument", p.be.Name, s.Name, kw)
				return ""
			}
			i++
			return w[i]
		}
		num := func() int {
			a := arg()
			if a == "" {
				return 0
			}
			n, err := strconv.Atoi(a)
			if err != nil || n < 0 {
				p.errorf("'server %s/%s': '%s' expects a non-negative integer, got '%s'", p.be.Name, s.Name, kw, a)
			}
			return n
		}
		switch kw {
		case "check":
			s.Check = true
		case "backup":
			s.Backup = true
		case "send-proxy":
			s.SendProxy = ProxyV1
		case "send-proxy-v2":
			s.SendProxy = ProxyV2
		case "inter":
			if a := arg(); a != "" {
				d, err := ParseTime(a)
				if err != nil {
					p.errorf("'server %s/%s': 'inter': %v", p.be.Name, s.Name, err)
				}
				s.Inter = d
			}
		case "port":
			a := arg()
			if a == "" {
				continue
			}
			n, err := strconv.Atoi(a)
			if err != nil || n < 1 || n > 65535 {
				p.errorf("'server %s/%s': 'port' expects a port number (1-65535) for the health checks, got '%s'", p.be.Name, s.Name, a)
			}
			s.CheckPort = n
		case "check-ssl":
			s.CheckSSL = true
		case "verify":
			switch a := arg(); a {
			case "none":
				s.VerifyNone = true
			case "required":
				s.VerifyNone = false
			case "":
			default:
				p.errorf("'server %s/%s': 'verify' expects 'none' or 'required', got '%s'", p.be.Name, s.Name, a)
			}
		case "ca-file":
			s.CAFile = arg()
			if s.CAFile != "" {
				if _, err := loadCAFile(s.CAFile); err != nil {
					p.errorf("'server %s/%s': %v", p.be.Name, s.Name, err)
				}
			}
		case "check-sni":
			s.CheckSNI = arg()
		case "rise":
			s.Rise = num()
		case "fall":
			s.Fall = num()
		case "maxconn":
			s.MaxConn = num()
		case "maxqueue":
			s.MaxQueue = num()
		case "weight":
			s.Weight = num()
			if s.Weight > 256 {
				p.errorf("'server %s/%s': weight must be between 0 and 256", p.be.Name, s.Name)
			}
			if s.Weight == 0 {
				p.warnf("'server %s/%s': weight 0 (drain) is not supported; using 1", p.be.Name, s.Name)
			}
		default:
			if slices.Contains(ignoredServerWords, kw) {
				arg()
				p.warnf("'server %s/%s': '%s' has no effect in portfwd; ignored", p.be.Name, s.Name, kw)
				continue
			}
			p.unknown(kw, fmt.Sprintf("in 'server %s/%s'", p.be.Name, s.Name), serverWords)
		}
	}
	if s.CheckSSL && !s.VerifyNone && s.CAFile == "" {
		p.errorf("'server %s/%s': verify is enabled by default but no CA file specified: set 'ca-file <file>', or an explicit 'verify none'", p.be.Name, s.Name)
	}
	p.be.Servers = append(p.be.Servers, s)
}
