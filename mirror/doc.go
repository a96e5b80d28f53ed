// Package mirror implements gitfleet's smart mirroring, in the style of Bitbucket
// Data Center's smart mirrors: a primary mounts Upstream, an http.Handler serving
// the mirror API; a mirror node runs Mirror, which registers with the primary,
// waits for an administrator's approval, pins the primary's SSH host keys, and
// keeps its repositories in sync over SSH.
//
// # Typical usage
//
// On the primary, with the node's embedded database and its SSH host keys:
//
//	up, err := mirror.NewUpstream(mirror.UpstreamConfig{
//		DB:          db, // <home>/shared/data/gitfleet.db
//		Admin:       isAdmin,
//		SSHBaseURL:  "ssh://git.example.com:7999",
//		SSHHostKeys: hostKeys,
//		Repos:       store,
//		ReadAccess:  userMayRead,
//	})
//	defer up.Close()
//	mux.Handle(mirror.APIPrefix+"/", up)
//	// In sshserve's authentication callback, recognise mirror keys:
//	if g, ok := up.MirrorKey(key); ok { /* read-only principal; g.CanRead(project) */ }
//
// On the mirror, from bitbucket.properties (application.mode=mirror):
//
//	m, err := mirror.Open(ctx, mirror.Config{
//		Home: home, DB: db, Repos: store,
//		Setup: mirror.SetupConfig{
//			DisplayName:  "Sydney",                          // setup.displayName
//			BaseURL:      "https://mirror-syd.example.com",  // setup.baseUrl
//			UpstreamURL:  "https://git.example.com",         // plugin.mirroring.upstream.url
//			UpstreamType: "server",                          // plugin.mirroring.upstream.type
//		},
//	})
//	if err != nil { return err } // e.g. *SetupChangedError, *CertError
//	go m.Run(ctx)
//	defer m.Close()
//	fmt.Println(m.Status().State) // PENDING until an administrator accepts it
//
// # Setup
//
// A mirror's setup is applied on its first start only: Open checks that the
// upstream URL is https:// and answers with a certificate the system roots trust
// (SSL_CERT_FILE and SSL_CERT_DIR are honoured; Config.RootCAs replaces the roots,
// and nothing turns verification off), then generates the mirror id (a UUID) and
// an Ed25519 key written with mode 0600 to <home>/shared/config/mirror_ed25519,
// and stores both with the setup in the database. On later starts a changed
// setup.baseUrl or plugin.mirroring.upstream.url fails with "the mirror base URL
// can only be set once; remove the mirror's home to set it up again"; a changed
// display name is ignored. The key is the only secret a mirror holds.
//
// # The mirror API
//
// Every path is under /rest/mirroring/1.0 and every body is JSON. Errors are
// Bitbucket-style: {"errors":[{"message":"..."}],"code":"..."}.
//
// Registration, signed with the key being registered (which proves the mirror
// holds it); idempotent for the same id, base URL and key; 201 when new, 200
// when repeated, 409 when the id is known with another base URL or key, when the
// key belongs to another mirror, or when the id was removed (code "removed"):
//
//	POST /mirrorServers
//	{"id":"0b8a7a2e-8f5e-4c57-9a57-3f6f2f4e0d11","name":"Sydney",
//	 "baseUrl":"https://mirror-syd.example.com","publicKey":"ssh-ed25519 AAAA..."}
//	-> 201 {"id":"0b8a...","name":"Sydney","baseUrl":"https://mirror-syd.example.com",
//	        "state":"PENDING","publicKey":"ssh-ed25519 AAAA..."}
//
// Administration (UpstreamConfig.Admin decides; others get 403):
//
//	GET /mirrorServers?start=0&limit=25
//	-> 200 {"values":[{"id":"0b8a...","name":"Sydney","baseUrl":"https://...",
//	        "state":"ACCEPTED","mirroringMode":"SELECTED_PROJECTS","projects":["PROJ"]}],
//	        "size":1,"isLastPage":true,"start":0,"limit":25}
//	GET /mirrorServers/{id}            -> 200 one value as above, 404 when unknown
//	DELETE /mirrorServers/{id}         -> 204; the key loses SSH and API access at once
//	POST /mirrorServers/{id}/accept    {"mirroringMode":"SELECTED_PROJECTS","projects":["PROJ"]}
//	                                   or {"mirroringMode":"ALL_PROJECTS"}
//	                                   -> 200; 409 unless PENDING; 422 when the mirror's
//	                                   base URL fails the HTTPS check (name, dates, chain)
//	POST /mirrorServers/{id}/reject    -> 200; 409 unless PENDING
//	PUT|DELETE /mirrorServers/{id}/projects/{KEY}
//	                                   -> 200; 409 for ALL_PROJECTS (it cannot be narrowed)
//	                                   or a mirror that is not ACCEPTED
//
// Signed mirror calls (a bad, expired, replayed or foreign signature, or an
// unknown or removed mirror, is 401 and nothing is done; a mirror that is not
// accepted gets 403 except for its state):
//
//	GET /mirrorServers/{id}/state
//	-> 200 {"state":"ACCEPTED","mirroringMode":"SELECTED_PROJECTS","projects":["PROJ"],
//	        "sshBaseUrl":"ssh://git.example.com:7999","sshHostKeys":["ssh-ed25519 AAAA..."]}
//	-> 200 {"state":"PENDING"}  (host keys only once accepted)
//	-> 404 for an unknown or removed id
//	GET /repos?start=0&limit=25
//	-> 200 {"values":[{"project":"PROJ","slug":"repo","sshUrl":"ssh://git.example.com:7999/PROJ/repo.git",
//	        "refsHash":"9f86d0..."}],"size":1,"isLastPage":true,"start":0,"limit":25}
//	GET /events?after=41&wait=30s
//	-> 200 {"events":[{"seq":42,"type":"refs_changed","project":"PROJ","slug":"repo",
//	        "refsHash":"9f86d0..."}],"last":42}
//	-> 410 {"events":[],"last":57,"resync":true}  (the cursor is older than the feed)
//	POST /authenticate {"publicKey":"ssh-ed25519 AAAA... alice","project":"PROJ","slug":"repo"}
//	-> 200 {"allowed":true,"user":"alice"}
//
// # Signing
//
// A signed request carries X-Gitfleet-Mirror (the mirror id),
// X-Gitfleet-Timestamp (unix seconds), X-Gitfleet-Nonce (random hex) and
// X-Gitfleet-Signature: base64 of an SSH signature in wire format over
//
//	METHOD \n PATH?QUERY as sent \n TIMESTAMP \n NONCE \n hex(sha256(body))
//
// made with the mirror key (RSA keys sign with rsa-sha2-256; "ssh-rsa" SHA-1
// signatures are refused). The timestamp must lie within MaxSkew (2 minutes) of
// the upstream's clock, and each nonce is accepted once: nonces are recorded in
// the database for twice the skew window, so a replay is refused even across a
// restart of the primary.
//
// # State
//
// The upstream keeps registrations, decisions, project selections, recent
// nonces and the change feed's sequence number in buckets under
// "gitfleet.mirror.upstream" of the database it is given; the mirror keeps its
// id, setup, registration state, pinned host keys and sync state under
// "gitfleet.mirror.node". Every change is one bbolt transaction.
package mirror
