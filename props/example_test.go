package props_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/props"
)

// Example loads a node's home directory and prints its typed configuration
// and every problem found.
func Example() {
	home, err := os.MkdirTemp("", "gitfleet-home")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(home)
	if err := os.MkdirAll(filepath.Join(home, "shared"), 0o755); err != nil {
		fmt.Println(err)
		return
	}
	const file = `# Bitbucket-style configuration
server.proxy-name=git.example.com
server.proxy-port=443
server.scheme=https
plugin.ssh.port=7999
plugin.ssh.disabled.macs=hmac-md5, hmac-sha1
plugin.bitbucket-git.mesh.sidecar.defualt-port=7778
`
	if err := os.WriteFile(gitfleet.Home(home).PropertiesFile(), []byte(file), 0o600); err != nil {
		fmt.Println(err)
		return
	}
	p, err := props.Load(context.Background(), home, props.LoadOptions{
		Environ: []string{"SERVER_PROXY_NAME=bitbucket.example.com"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg, problems := props.Check(p)
	fmt.Println("HTTP port:", cfg.Server.Port)
	fmt.Println("public URL:", cfg.PublicBaseURL())
	fmt.Println("clone URL:", cfg.SSHBaseURL()+"/PROJ/repo.git")
	fmt.Println("disabled MACs:", cfg.SSH.DisabledMACs)
	fmt.Println("proxy-name from:", cfg.Source(props.KeyServerProxyName))
	for _, pr := range problems {
		fmt.Printf("%s %s: %s\n", pr.Severity, pr.Key, pr.Message)
	}
	// Output:
	// HTTP port: 7990
	// public URL: https://bitbucket.example.com
	// clone URL: ssh://git@bitbucket.example.com:7999/PROJ/repo.git
	// disabled MACs: [hmac-md5 hmac-sha1]
	// proxy-name from: env SERVER_PROXY_NAME
	// warning plugin.bitbucket-git.mesh.sidecar.defualt-port: unknown key; did you mean plugin.bitbucket-git.mesh.sidecar.default-port?
}

// ExampleFile_Set changes a key in place and keeps the comments around it.
func ExampleFile_Set() {
	f, err := props.Parse("bitbucket.properties", []byte("# HTTP\nserver.port=7990\n\n# SSH\nplugin.ssh.port=7999\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	f.Set("server.port", "8990")
	f.Set("setup.displayName", "Git: main site")
	f.Delete("plugin.ssh.port")
	fmt.Print(string(f.Bytes()))
	// Output:
	// # HTTP
	// server.port=8990
	//
	// # SSH
	// setup.displayName=Git\: main site
}

// ExampleProperties_Resolve resolves a Spring-style placeholder with a default.
func ExampleProperties_Resolve() {
	f, err := props.Parse("bitbucket.properties", []byte("host=git.example.com\nsetup.baseUrl=https://${host}${CONTEXT:/bitbucket}\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	p := props.New(f, []string{})
	raw, _ := p.Get("setup.baseUrl")
	resolved, _, err := p.Resolve("setup.baseUrl")
	fmt.Println(raw)
	fmt.Println(resolved, err)
	// Output:
	// https://${host}${CONTEXT:/bitbucket}
	// https://git.example.com/bitbucket <nil>
}
