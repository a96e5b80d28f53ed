package sshserve

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is the port Bitbucket serves Git over SSH on (plugin.ssh.port).
const DefaultPort = 7999

// BaseURL returns the SSH base URL for a server reachable at host and port, as
// "ssh://git@host:port", leaving out ":22". IPv6 hosts are bracketed.
func BaseURL(host string, port int) string {
	if port == 22 || port == 0 {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return "ssh://git@" + host
	}
	return "ssh://git@" + net.JoinHostPort(host, strconv.Itoa(port))
}

// CloneURL returns the URL to clone repository project/slug over SSH, such as
// "ssh://git@host:7999/proj/repo.git". base is the configured base URL
// (plugin.ssh.baseurl, or BaseURL(host, port)); a trailing slash and an explicit
// ":22" are dropped. The project key is written in lower case, as Bitbucket does;
// the server accepts either case.
func CloneURL(base, project, slug string) string {
	base = strings.TrimRight(base, "/")
	if u, err := url.Parse(base); err == nil && u.Port() == "22" {
		u.Host = u.Hostname()
		if strings.Contains(u.Host, ":") {
			u.Host = "[" + u.Host + "]"
		}
		base = u.String()
	}
	return base + "/" + strings.ToLower(project) + "/" + strings.ToLower(slug) + ".git"
}
