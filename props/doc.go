// Package props loads a node's <home>/shared/bitbucket.properties exactly as the
// JVM reads it, applies environment overrides the way Spring Boot binds them,
// converts the result into a typed, validated Config, and edits the file without
// losing its comments.
//
// # Typical usage
//
//	home := gitfleet.ResolveHome(*homeFlag, os.LookupEnv) // -home, $GITFLEET_HOME, ./gitfleet-home
//	p, err := props.Load(ctx, home.Dir(), props.LoadOptions{Logger: logger})
//	if err != nil {
//		return err // unreadable file, or a line Java would reject (file:line)
//	}
//	cfg, problems := props.Check(p)
//	for _, w := range problems.Warnings() {
//		logger.Warn("configuration", "problem", w.String())
//	}
//	if err := problems.Err(); err != nil {
//		return err // every error at once, each with key, source and fix
//	}
//	addr := net.JoinHostPort(cfg.Server.Address, strconv.Itoa(cfg.Server.Port))
//	fmt.Println("clone with", cfg.SSHBaseURL()+"/PROJECT/repo.git", "via", cfg.PublicBaseURL())
//
// A -check-config flag prints each Problem that props.Check returns (its String
// method gives source, severity, key, message and fix); a -dump-properties flag calls
// p.WriteJSON(os.Stdout), the effective raw properties sorted by key with
// their sources, without defaults or placeholder resolution.
//
// To change the file, edit the parsed File and save it:
//
//	f := p.File() // nil when there was no file: use props.Parse(home.PropertiesFile(), nil)
//	f.Set("setup.displayName", "Mirror of Git")
//	f.Delete("setup.sysadmin.password")
//	err := f.Save() // temp file, fsync, rename; comments and order kept
//
// # Two halves
//
// The package holds two concepts, kept in separate files. The first is a
// generic codec for Java .properties files, which knows no key: reader.go and
// escape.go (Java's syntax and escapes), file.go (Parse, File, editing),
// atomic.go (saving), source.go (Source, Entry: file:line or env NAME),
// placeholder.go (Spring's ${name:default}) and env.go (Spring Boot's relaxed
// binding of environment variables). The second is Bitbucket's typed keys:
// keys.go declares every key once, in the table KnownKeys returns — its name,
// default, documentation, how its value is converted, the Config field it fills
// and the rule its value follows — and everything else reads that table:
// properties.go (which keys the environment binds), convert.go (defaults and
// conversion into Config), validate.go (each key's rule, then the rules between
// keys), suggest.go ("did you mean") and the listing under Keys below, which a
// test compares with the table. config.go holds the typed Config and the URLs
// derived from it; problems.go the Problems that conversion and validation
// report. The home layout and the PROXY protocol policy are gitfleet's
// (gitfleet.Home, gitfleet.ProxyPolicy), shared with the other packages.
//
// # Reading the file
//
// The reader follows java.util.Properties.load rule for rule, and a differential
// test compares it with a real JDK on hand-written and generated files:
//
//   - A logical line continues while it ends in an odd number of backslashes; the
//     backslash, the line break and the next line's leading blanks (space, tab,
//     form feed) are dropped. "\r\n", "\r" and "\n" all end lines.
//   - A line whose first non-blank character is '#' or '!' is a comment (not on a
//     continuation line).
//   - The key ends at the first unescaped '=', ':' or blank; blanks, at most one
//     '=' or ':', then blanks are skipped. "=v" is the empty key; "k = = v" is "= v".
//   - Escapes: \t \n \r \f, \uXXXX (exactly four hex digits, else a *ParseError
//     naming file:line, as Java's load fails), and \c is c for any other c.
//     Trailing blanks of a value are kept. The last of duplicate keys wins.
//
// Encoding: Java's load(InputStream) reads ISO-8859-1, but files are edited in
// UTF-8 today. A file that is valid UTF-8 is decoded as UTF-8 with a leading
// byte order mark dropped (Java's load(Reader) over UTF-8); any other file as
// ISO-8859-1. \uXXXX escapes are UTF-16 units: a surrogate pair written as two
// escapes is one character; a lone surrogate, which a Go string cannot hold,
// becomes U+FFFD.
//
// Every value knows its Source: "file:line" (the line its logical line starts
// on) or "env NAME".
//
// # magiconair/properties
//
// github.com/magiconair/properties is the benchmark peer and the reference
// the tests compare against; the package does not use it to read, hold or
// convert values, since each key's conversion is in its row of KnownKeys. Its
// typed getters would not fit: GetBool takes "yes", "1" and
// "on" where Bitbucket takes only true and false, and its durations have no
// bare seconds. Its own
// reader is not used, because it differs from Java: a line ending in a
// backslash and "\r\n" does not continue, "=v" (the empty key) and a backslash
// at the end of the file are errors, a surrogate pair written as two \u escapes
// becomes two U+FFFD, ${...} is expanded unless told not to (and Filter*
// return sets with expansion on again), Decode splits lists at ';', and the
// Must* functions call log.Fatal; on some bad input (such as "=v") its loader
// returns an error and leaves its lexer goroutine blocked forever; it also keeps no line numbers, and its writer
// loses blank lines and the layout of comments. The tests show each of these
// differences does not reach a user of this package.
//
// # Environment overrides
//
// An environment variable overrides a key with Spring Boot's relaxed binding:
// upper case, '.' to '_', '-' removed or turned into '_', and a list index [0]
// to _0_ (or a trailing _0). server.proxy-name is set by SERVER_PROXYNAME or
// SERVER_PROXY_NAME (the former wins when both are set);
// plugin.ssh.disabled.ciphers[0] by PLUGIN_SSH_DISABLED_CIPHERS_0_. Variables
// are matched against the known keys (KnownKeys) and the keys present in the
// file; the environment wins over the file.
//
// # Placeholders
//
// Values may hold Spring-style placeholders, ${name} and ${name:default},
// resolved when a value is used (Resolve, Config): from the other properties,
// then from the environment (the name as is, then its relaxed upper-case form).
// Placeholders nest in names and defaults. An unresolvable placeholder is an
// error naming the key and its source; a "${" without its "}" is plain text, and
// a bad placeholder in one value never affects another key.
//
// # Keys
//
// Config covers these keys (KnownKeys lists them with a line of documentation
// each), with Bitbucket's defaults. An empty value means the
// default. Booleans are true or false in any case; durations are 180s, 3m, 1h,
// PT3M or a bare number of seconds; lists are comma-separated or indexed
// (key[0], key[1], ...). As in Spring Boot, a list comes whole from the most
// important source that holds any element of it (the environment, then the
// file), and within one source indexed entries replace the comma form.
// Networks are CIDR prefixes or single addresses.
//
//	server.port                                     7990
//	server.address                                  (all addresses)
//	server.proxy-name                               (none)
//	server.proxy-port                               (none)
//	server.scheme                                   http (https when server.ssl.enabled)
//	server.secure                                   false
//	server.context-path                             (none)
//	server.ssl.enabled                              false
//	server.ssl.certificate                          PEM certificate chain path
//	server.ssl.certificate-private-key              PEM private key path
//	plugin.ssh.port                                 7999
//	plugin.ssh.baseurl                              (derived, see Config.SSHBaseURL)
//	plugin.ssh.disabled.ciphers                     (list)
//	plugin.ssh.disabled.key.exchanges               (list)
//	plugin.ssh.disabled.macs                        (list)
//	plugin.bitbucket-git.mesh.sidecar.default-port  7777
//	plugin.gitfleet.lfs.max-object-size             5g (bytes, or k m g; -1: no limit)
//	plugin.gitfleet.lfs.grace-period                24h (unreferenced LFS objects kept)
//	plugin.bitbucket-git.mesh.pack-cache.enabled    true (gitfleet)
//	plugin.bitbucket-git.mesh.pack-cache.max-size   1g (gitfleet)
//	plugin.bitbucket-git.mesh.pack-cache.max-age    1h (gitfleet)
//	plugin.bitbucket-git.mesh.pack-cache.dir        <repositories>/.mesh/pack-cache (gitfleet)
//	plugin.bitbucket-git.mesh.pack-objects.max-per-repository  0 = number of CPUs (gitfleet)
//	application.mode                                default | mirror
//	setup.displayName                               (first start only)
//	setup.baseUrl                                   (first start only)
//	setup.sysadmin.username                         (first start only)
//	setup.sysadmin.password                         (first start only)
//	setup.sysadmin.displayName                      (first start only)
//	setup.sysadmin.emailAddress                     (first start only)
//	plugin.mirroring.upstream.url                   https:// URL of the primary
//	plugin.mirroring.upstream.type                  server
//	plugin.mirroring.synchronization.interval       3m
//	plugin.mirroring.farm.join-token                (a farm's join token; gitfleet)
//
// gitfleet adds keys of its own:
//
//	plugin.ssh.proxy-protocol          off | optional | required (default off): whether
//	                                   the SSH port reads a PROXY protocol v1/v2 header
//	                                   carrying the client's address.
//	plugin.ssh.proxy-protocol.trusted  networks (CIDR list, or single addresses) whose
//	                                   PROXY headers are believed; a header is read
//	                                   only from these.
//	plugin.ssh.trusted.user.ca.keys    path of a file of certificate authority public
//	                                   keys, one per line (as OpenSSH's
//	                                   TrustedUserCAKeys): their user certificates log
//	                                   in as the user their principal names. Empty:
//	                                   certificates are refused.
//	plugin.ssh.revoked.keys            path of a file of revoked public keys and
//	                                   "serial: N[-M]" and "id: KEYID" lines (as
//	                                   OpenSSH's RevokedKeys, in ssh-keygen -k's text
//	                                   form); a listed key is refused as a plain key,
//	                                   a certificate's key and a certificate authority.
//	plugin.mirroring.readiness.upstream-outage 60s: a mirror whose change feed has
//	                                   failed for longer answers 503 on
//	                                   GET /status/ready (see package node).
//
// Paths are used as given (relative ones from the working directory), as
// server.ssl.certificate's. props reads neither file: the SSH server does
// (sshserve.LoadTrustedUserCAKeys, sshserve.LoadRevocationList), and
// node.CheckSSHFiles reports their problems, with file and line, for a
// -check-config flag.
//
// Derived values: Config.PublicBaseURL is setup.baseUrl, else built from
// server.scheme, server.proxy-name, server.proxy-port (else server.port) and
// server.context-path, leaving out the scheme's default port;
// Config.SSHBaseURL is plugin.ssh.baseurl, else ssh://git@host:port with the
// public host and plugin.ssh.port, leaving out :22.
//
// # Validation
//
// Properties.Config reports every value that cannot be resolved or converted;
// Config.Validate reports each key's own rule and the rules between keys (ports out of range, an
// unknown application.mode, a mirror without setup.baseUrl or
// plugin.mirroring.upstream.url, an upstream URL without https://, HTTPS
// without certificate and key, PROXY protocol without trusted networks) and
// warns about unknown keys with a "did you mean" for near misses. Check runs
// both. Each Problem carries the key, its source, the message and the fix.
//
// # Saving
//
// File.Set and File.Delete change only the lines of the key concerned; comments,
// blank lines and the order of other lines are kept. New lines are escaped as
// Properties.store escapes them, in ASCII, so they read back alike in either
// encoding. File.Save writes atomically (temporary file, fsync, rename) and
// keeps the file's mode; a new file gets 0600, as it may hold passwords.
//
// # Speed
//
// BenchmarkLoad reads the same 10,000-line file (400 KB, 6,000 entries with
// comments, continuations, escapes and non-ASCII text) with Parse ("props"),
// with Parse plus New's environment binding ("props+env", the work of Load
// after reading the file), and with magiconair's loader, expansion disabled
// ("magiconair"):
//
//	go test -run '^$' -bench BenchmarkLoad -benchmem -count 6 ./props/
//
// Medians of six runs on 2 shared cores (Go 1.26, linux/amd64), with other
// work running on the machine, so single runs vary by up to 2x:
//
//	props        7.5 ms/op  2.55 MB/op  18,042 allocs/op  0.56x magiconair's time
//	props+env    9.2 ms/op  4.23 MB/op  18,149 allocs/op  0.69x
//	magiconair  13.5 ms/op  2.12 MB/op  16,094 allocs/op  1.00x
//
// A later run under heavier load gave 11.9, 12.2 and 45.2 ms/op (medians), so
// the ratios ranged from 0.26x to 0.56x (props) and 0.27x to 0.69x
// (props+env) across runs. The target, within 1.5x of magiconair, is met: the Java-exact reader is
// faster than magiconair's, which hands every token through a channel from a
// lexer goroutine. It allocates about 1.2x the bytes, for the line numbers
// and the raw text kept for saving.
//
// # Operating systems
//
// Nothing here differs per system: the package is plain Go and behaves the same
// on Linux, macOS, FreeBSD and Windows.
package props
