package portfwd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/gitfleet/gitfleet/portfwd"
)

func ExampleParseConfig() {
	cfg, err := portfwd.ParseConfig(strings.NewReader(`
global
    maxconn 10000
    daemon
defaults
    timeout connect 500s
    timeout client 5000s
    timeout server 1h
frontend sshd
    bind *:7999
    default_backend ssh
    timeout client 1h
backend ssh
    mode tcp
    server bitbucket 192.0.2.10:7999 send-proxy-v2 check
`), "haproxy.cfg")
	if err != nil {
		fmt.Println(err)
		return
	}
	fe := cfg.Frontends[0]
	s := cfg.Backend(fe.DefaultBackend).Servers[0]
	fmt.Println(fe.Name, fe.Binds[0].Addr, fe.Timeouts.Client)
	fmt.Println(s.Name, s.Addr, s.SendProxy == portfwd.ProxyV2, s.Check)
	for _, w := range cfg.Warnings {
		fmt.Println("warning:", w)
	}
	// Output:
	// sshd :7999 1h0m0s
	// bitbucket 192.0.2.10:7999 true true
	// warning: haproxy.cfg:4: 'daemon' has no effect in portfwd; ignored
}

func ExampleParseConfig_errors() {
	_, err := portfwd.ParseConfig(strings.NewReader(`
frontend sshd
    mode http
    bind *:7999
    defualt_backend ssh
backend ssh
    server bitbucket
`), "haproxy.cfg")
	var ce *portfwd.ConfigError
	if errors.As(err, &ce) {
		for _, d := range ce.Diagnostics {
			fmt.Println(d)
		}
	}
	// Output:
	// haproxy.cfg:3: 'mode http' is not supported: portfwd forwards TCP only (use 'mode tcp')
	// haproxy.cfg:5: unknown keyword 'defualt_backend' in 'frontend' section; did you mean 'default_backend' maybe ?
	// haproxy.cfg:7: 'server' expects <name> and <addr>[:<port>] as arguments
}

// ExampleForwarder embeds a forwarder in front of a local server, as a
// program would put one in front of its SSH port.
func ExampleForwarder() {
	// A server that greets each connection.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from the server\n")
			c.Close()
		}
	}()

	cfg, err := portfwd.ParseConfig(strings.NewReader(fmt.Sprintf(`
frontend ssh
    bind 127.0.0.1:0
    default_backend git
backend git
    server s1 %s
`, ln.Addr())), "embedded")
	if err != nil {
		fmt.Println(err)
		return
	}
	fw, err := portfwd.New(cfg, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	// One listener per bind address, in the order Serve takes them
	// (fw.ListenAndServe would open them itself).
	ls, err := cfg.Listen(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- fw.Serve(ls...) }()

	c, err := net.Dial("tcp", ls[0].Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	greeting, _ := io.ReadAll(c)
	c.Close()
	fmt.Print(string(greeting))

	fw.Shutdown(context.Background()) // stop accepting, let connections end
	fmt.Println(<-served)
	// Output:
	// hello from the server
	// portfwd: forwarder closed
}
