package gitfleet

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultSSHPort is the port Bitbucket serves Git over SSH on (plugin.ssh.port).
const DefaultSSHPort = 7999

// SSHBaseURL returns the SSH base URL of a server reachable at host and port, as
// "ssh://git@host:port", leaving out ":22" (and a zero port). IPv6 hosts are
// bracketed.
func SSHBaseURL(host string, port int) string {
	if port == 22 || port == 0 {
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		return "ssh://git@" + host
	}
	return "ssh://git@" + net.JoinHostPort(host, strconv.Itoa(port))
}

// CloneURL returns the URL to clone repo over SSH, such as
// "ssh://git@host:7999/proj/repo.git". base is the configured base URL
// (plugin.ssh.baseurl, or SSHBaseURL(host, port)); a trailing slash and an explicit
// ":22" are dropped. The project key is written in lower case, as Bitbucket does;
// servers accept either case.
func CloneURL(base string, repo RepoName) string {
	base = strings.TrimRight(base, "/")
	if u, err := url.Parse(base); err == nil && u.Port() == "22" {
		u.Host = u.Hostname()
		if strings.Contains(u.Host, ":") {
			u.Host = "[" + u.Host + "]"
		}
		base = u.String()
	}
	return base + "/" + strings.ToLower(repo.Project) + "/" + strings.ToLower(repo.Slug) + ".git"
}
