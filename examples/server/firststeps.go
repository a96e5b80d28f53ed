package main

import (
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/props"
)

// firstSteps returns the copy-paste sequence that takes a new node to a first
// clone: the administrator's credentials, a project, a repository, the user's
// public keys, a permission, the SSH host key, then push and clone. The README
// quotes it for the default ports, and a test runs it as printed.
func firstSteps(cfg *props.Config, adminUser string, generated bool, home gitfleet.Home) string {
	base := strings.TrimRight(cfg.PublicBaseURL(), "/")
	sshURL, _ := url.Parse(cfg.SSHBaseURL())
	sshHost, sshPort := "localhost", "7999"
	if sshURL != nil {
		sshHost, sshPort = sshURL.Hostname(), sshURL.Port()
		if sshPort == "" {
			sshPort = "22"
		}
	}
	var b strings.Builder
	if generated {
		fmt.Fprintf(&b, "ADMIN=\"$(cat %s)\"\n", filepath.Join(home.ConfigDir(), adminPasswordFile))
	} else {
		fmt.Fprintf(&b, "ADMIN='%s:<setup.sysadmin.password>'\n", adminUser)
	}
	fmt.Fprintf(&b, "curl -fsS -u \"$ADMIN\" -H 'Content-Type: application/json' -d '{\"key\":\"PROJ\",\"name\":\"My project\"}' %s/rest/api/1.0/projects\n", base)
	fmt.Fprintf(&b, "curl -fsS -u \"$ADMIN\" -H 'Content-Type: application/json' -d '{\"name\":\"my-repo\"}' %s/rest/api/1.0/projects/PROJ/repos\n", base)
	fmt.Fprintf(&b, "for k in ~/.ssh/*.pub; do curl -fsS -u \"$ADMIN\" -H 'Content-Type: application/json' -d \"{\\\"text\\\":\\\"$(cat \"$k\")\\\"}\" \"%s/rest/ssh/1.0/keys?user=$USER\"; done\n", base)
	fmt.Fprintf(&b, "curl -fsS -u \"$ADMIN\" -X PUT \"%s/rest/api/1.0/projects/PROJ/permissions/users?name=$USER&permission=PROJECT_WRITE\"\n", base)
	fmt.Fprintf(&b, "ssh-keyscan -p %s %s >> ~/.ssh/known_hosts\n", sshPort, sshHost)
	fmt.Fprintf(&b, "git clone %s/proj/my-repo.git && cd my-repo\n", strings.TrimRight(cfg.SSHBaseURL(), "/"))
	b.WriteString("echo hello > README.md && git add README.md && git commit -m 'First commit' && git push origin HEAD:main\n")
	b.WriteString("cd .. && git clone " + strings.TrimRight(cfg.SSHBaseURL(), "/") + "/proj/my-repo.git my-repo-copy\n")
	return b.String()
}

// printFirstSteps tells the operator, on a node's first start, where the
// administrator's credentials are and what to run next.
func printFirstSteps(w io.Writer, cfg *props.Config, adminUser, generatedPassword string, home gitfleet.Home) {
	cred := fmt.Sprintf("password %s\n             (generated once; also in %s, mode 0600)",
		generatedPassword, filepath.Join(home.ConfigDir(), adminPasswordFile))
	if generatedPassword == "" {
		cred = "password from setup.sysadmin.password in " + home.PropertiesFile()
	}
	fmt.Fprintf(w, `
gitfleet is running.
  HTTP API:  %s
  SSH:       %s
  Admin:     user %q, %s

Next steps (copy and paste):

%s
`, cfg.PublicBaseURL(), cfg.SSHBaseURL(), adminUser, cred, firstSteps(cfg, adminUser, generatedPassword != "", home))
}
