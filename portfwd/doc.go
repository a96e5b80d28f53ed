// Package portfwd is a TCP forwarder configured like HAProxy in TCP mode. It
// puts an SSH port where users want it (22 or 7999 in front of a Git
// server), passes the client's address on with the PROXY protocol, and reads
// the HAProxy configuration file an administrator already has.
//
// # Configuration
//
// ParseConfig reads this subset of HAProxy's syntax: the sections global,
// defaults, frontend, backend and listen (a listen section is a frontend and
// a backend of the same name); "defaults" settings pass on to the proxies
// declared after it, a new defaults section replacing the previous one;
// time values in milliseconds unless suffixed us, ms, s, m, h or d; "#"
// comments, quotes and backslash escapes. The keywords:
//
//	global    maxconn N
//	defaults  mode tcp | balance ALGO | retries N | maxconn N | timeout KIND TIME | option ...
//	frontend  bind [ADDR]:PORT[,...] [accept-proxy] | default_backend NAME | maxconn N | timeout client|client-fin TIME
//	backend   server NAME ADDR:PORT [check] [port N] [inter T] [rise N] [fall N] [send-proxy] [send-proxy-v2]
//	                    [maxconn N] [maxqueue N] [backup] [weight N]
//	                    [check-ssl] [verify none|required] [ca-file FILE] [check-sni NAME]
//	          balance roundrobin|leastconn|source|first | retries N
//	          timeout connect|server|tunnel|queue|server-fin|check TIME
//	          option httpchk [[METHOD] URI [VERSION]] | no option httpchk
//	          http-check send [meth METHOD] [uri URI] [ver VERSION] [hdr NAME VALUE]...
//	          http-check expect [!] status CODES | [!] rstatus REGEX
//
// Unknown keywords are errors carrying file:line and, for a near miss, a
// "did you mean". Keywords HAProxy accepts that change nothing here (log,
// daemon, user, option tcplog, tune.*, ...) give warnings. "mode http" is an
// error: portfwd forwards TCP only; this is its one deliberate difference
// from haproxy -c. Defaults are HAProxy's: retries 3, inter 2s, rise 2,
// fall 3, and no timeout unless one is set.
//
// # Forwarding
//
// A Forwarder accepts on every bind, reads a PROXY header (v1 or v2) on
// accept-proxy binds, picks a server, retries other servers when a connect
// fails, sends a PROXY header to send-proxy and send-proxy-v2 servers, and
// then copies bytes both ways. When one side shuts down its output, the other
// side's output is shut down too (half-close). When one side resets the
// connection (or a write to it fails), the other side is closed with a reset
// too (SO_LINGER 0), as HAProxy passes an abort on: a server never reads an
// aborted client as one that finished its request (TestResetPassesThrough).
//
// On Linux, connections are carried by epoll event loops, one per processor
// (at most four), as HAProxy's threads carry them: the accept goroutine of a bind
// takes the maxconn slots, accepts, picks a server that has a free slot,
// starts a non-blocking connect and registers both sockets with a loop. The
// loop moves short exchanges through one 16 KiB buffer of its own
// (edge-triggered, with EPOLLRDHUP, so a peer's FIN needs no extra read and
// leaves with the last data in one segment), keeps no buffer for an idle
// connection, and makes only raw non-blocking system calls, about 15 per
// connection. The first read that fills the buffer marks a bulk transfer: the
// loop hands the two sockets, and any bytes still waiting either way, to a
// pair of goroutines that copy with io.Copy between two *net.TCPConn, which
// Go performs with splice(2), so the bulk never enters user space and no
// wrapper sits on its path. (For a kilobyte, read and write cost less than
// two splices and a pipe; for megabytes, far less.) Connections that need
// waiting take the goroutine way from the start: accept-proxy binds (the
// PROXY header), servers named by host name (resolved at each connect), a
// backend whose servers are all busy (the queue) or down, and a connect that
// fails or times out in a loop (the retries). Inactivity timeouts are
// enforced by the loops from the time data last moved, and for goroutine
// pairs by reading each socket's TCP_INFO (the kernel's time since data was
// last sent and received; see "Operating systems" for other systems).
//
// Servers with "check" are probed every inter with a TCP connect (and a
// LOCAL PROXY header for send-proxy servers); fall failures in a row take a
// server down, rise passes bring it back, and a server that is down gets no
// new connections. "port N" sends the checks to another port than the
// traffic's (and then, as in HAProxy, without a PROXY header), typically a
// node's HTTP port in front of its SSH port (see "HTTP health checks"
// below). Backup servers take traffic only when no other server is up. Server maxconn puts further connections in a
// backend queue bounded by maxqueue and "timeout queue"; with "balance source"
// a client belongs to the server its address hashes to (among those up), so
// when that server is full the connection waits in the server's own queue, as
// in HAProxy (Stats reports both queues); frontend and global
// maxconn stop accepting, leaving clients in the kernel's backlog. When no
// server is up, or every attempt failed, the client connection is closed.
//
// # HTTP health checks
//
// "option httpchk" (in a backend, listen or defaults section) makes each
// check an HTTP request on a TCP backend, as HAProxy does: the request line
// is "OPTIONS / HTTP/1.0" unless the option, or "http-check send meth|uri|ver",
// names another method, URI or version; "http-check send hdr NAME VALUE" adds
// headers (HTTP/1.1 servers want Host), and beyond HTTP/1.0 "Connection:
// close" is added. The check reads the response's status line within
// "timeout check" (else inter) and passes on any 2xx or 3xx status, or, with
// "http-check expect status 200" (a comma-separated list of codes and ranges
// such as 200,300-399) or "http-check expect rstatus REGEX" (Go's RE2 syntax,
// matched against the three digits), on what the rule accepts; "!" inverts
// it. A refused or reset connection, a timeout, or an answer that is not HTTP
// fails. Backend.HTTPCheck holds the settings. What portfwd refuses, with
// file:line: "http-check expect" on headers or body (hdr, fhdr, string,
// rstring) and its options (min-recv, comment, ...), more than one expect
// rule per backend, "http-check connect|comment|disable-on-404|send-state|
// set-var|unset-var", "http-check send body|body-lf|uri-lf", and headers
// smuggled after the version of "option httpchk". http-check rules without
// "option httpchk" are ignored with a warning, as HAProxy does.
//
// "check-ssl" makes the checks TLS connections, for an HTTPS health endpoint
// (a gitfleet mirror serves HTTPS only). As in HAProxy, the certificate is
// verified unless the server line says "verify none": "ca-file FILE" names
// the trusted authorities (read, and checked, when the configuration is
// parsed; without one the configuration is refused), and "check-sni NAME"
// sends a server name that the certificate must then match; without it only
// the chain is verified. For example, a farm of gitfleet nodes whose
// SSH port takes traffic only while the node's readiness endpoint (package
// node) answers 200:
//
//	backend git
//	    option httpchk GET /status/ready
//	    http-check expect status 200
//	    server m1 10.0.0.1:7999 check port 8990 check-ssl ca-file /etc/ssl/farm-ca.pem inter 2s fall 3 rise 2
//	    server m2 10.0.0.2:7999 check port 8990 check-ssl ca-file /etc/ssl/farm-ca.pem inter 2s fall 3 rise 2
//
// Reload swaps the configuration: binds whose address is unchanged keep
// their sockets, new ones open, removed ones close, and established
// connections are never cut.
//
// # Operating systems
//
// Linux has the fast paths: the epoll event loops with raw accept4 and
// connect, splice (io.Copy between two *net.TCPConn), and TCP_INFO for the
// inactivity timeouts and for the bytes of open connections in Stats, with no
// wrapper on the data path. On macOS, FreeBSD and Windows there are no loops:
// every connection takes the goroutine way, two goroutines copying through a
// 32 KiB buffer (as io.Copy does there, having no splice), and that copy loop
// notes the bytes moved and when each socket last moved data, which the
// inactivity timeouts and Stats read instead of TCP_INFO. The PROXY header is
// peeked at (MSG_PEEK) on Unix and read byte by byte up to its end on Windows.
// Configuration, PROXY protocol, health checks, maxconn, queues, timeouts and
// Reload behave the same everywhere; the figures below are Linux's.
//
// # Performance
//
// Measured side by side with HAProxy 2.6.12 (its default threads) on
// loopback, both running the same configuration file as separate processes,
// with the same Go client and echo server, on a 2-core virtual machine
// (2026-11-22; the committed BENCHMARKS.md run, with the range of the ratio
// over that day's three full runs). Medians of 5 interleaved rounds;
// reproduce with
//
//	bench/run -only 5 -rounds 5
//
// (or, in-process client and a forwarder subprocess:
// PORTFWD_BENCH_BULK=1073741824 go test -run '^$' -bench . -benchtime 2s -count 3 ./portfwd):
//
//	bulk, 1 GiB each way at once through one connection (MB/s both ways)
//	    portfwd 972   HAProxy 706 (1.38x; 1.38x-1.69x; direct, no proxy: 1,252)
//	new connections/s (64 clients; connect, 1 KiB echo, close; 6,400 in all)
//	    portfwd 7,039   HAProxy 6,958 (1.01x; 1.01x-1.08x; target 0.9x)
//	    CPU per run: portfwd 0.64 s, HAProxy 0.69 s. strace counts 16 system
//	    calls per connection for portfwd's event loop and 18 for HAProxy. The
//	    goroutine way, which every connection took before the loops, made 24
//	    (the net package reads every socket's addresses and a connect's
//	    SO_ERROR, and needs a read to see each end of input) and spent as
//	    much again in the scheduler (two goroutines per connection, and the
//	    runtime handing a processor to another thread during slow system
//	    calls): 1.09 s per run, 0.82x HAProxy's rate. BenchmarkConnRate
//	    reports the forwarder's and the client's CPU per connection
//	    (fwd-cpu-µs/conn, bench-cpu-µs/conn): about 110 µs for either
//	    forwarder, against 145 µs for the goroutine way.
//	p99 round trip of 1 KiB on 8 held connections
//	    portfwd 2,520 µs   HAProxy 2,291 µs (1.10x; 1.06x-1.21x: the tail is
//	    the 2 cores' scheduling, the direct connection's own p99 being
//	    0.35-1.1 ms; p50 145 µs against 93 µs)
//	memory per idle established connection pair (resident set growth over
//	2,000 pairs, fresh process per measurement)
//	    portfwd 0.70 KiB (target: at most 20 KiB), HAProxy 3.3 KiB
//	    An idle pair in a loop is a small struct and two map entries: no
//	    goroutine, no buffer (the goroutine way held two goroutine stacks,
//	    14.4 KiB).
//
// TestDataPathUsesSplice runs a forwarder process under strace while 8 MiB
// pass each way, once plain (through a loop, which hands the pair over) and
// once with accept-proxy and send-proxy-v2 (the goroutine way): splice(2)
// moves 4 x 8 MiB less the first 16 KiB of each direction (socket to pipe to
// socket, both ways) and the read/write family those 16 KiB and a few bytes
// more (the PROXY header is peeked at, then exactly its bytes are read).
//
// # Typical usage
//
//	cfg, err := portfwd.ParseFile("/etc/haproxy/haproxy.cfg")
//	if err != nil {
//		return err // a *ConfigError lists every problem as file:line: message
//	}
//	fw, err := portfwd.New(cfg, logger)
//	if err != nil {
//		return err
//	}
//	go func() {
//		if err := fw.ListenAndServe(); !errors.Is(err, portfwd.ErrServerClosed) {
//			logger.Error("forwarder stopped", "err", err) // a bind could not be opened
//		}
//	}()
//	...
//	err = fw.Reload(ctx, newCfg)
//	...
//	fw.Shutdown(ctx) // stop accepting, let connections end; ctx bounds the wait
//	fw.Close()       // then close whatever is still open
//
// The lifecycle is net/http's: ListenAndServe or Serve, Shutdown, Close, and
// ErrServerClosed from Serve once Shutdown or Close was called. Serve takes one
// listener per bind address of the configuration (Config.BindAddrs), where
// http.Server.Serve takes one: a program that must know its binds are open
// before it goes on, or that is handed its sockets, opens them itself:
//
//	ls, err := cfg.Listen(ctx) // one per bind address, in Serve's order
//	if err != nil {
//		return err
//	}
//	go fw.Serve(ls...)
//
// A program that embeds a forwarder in front of its own SSH server can build
// the configuration from text:
//
//	cfg, err := portfwd.ParseConfig(strings.NewReader(`
//	frontend ssh
//	    bind 127.0.0.1:7999
//	    default_backend git
//	backend git
//	    server s1 127.0.0.1:2222 send-proxy-v2
//	`), "embedded")
package portfwd
