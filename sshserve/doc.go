// Package sshserve serves Git over SSH, as Bitbucket does on port 7999: a server
// on golang.org/x/crypto/ssh that runs only git-upload-pack, git-receive-pack,
// git-upload-archive and whoami, never a shell.
//
// The package owns the SSH side: host keys, client keys mapped to a Principal,
// read/write authorization per repository, command parsing, limits and timeouts,
// and the PROXY protocol. Storage is behind the GitBackend interface (mesh.Store
// and mesh.Client satisfy it) and the user database behind two callbacks, so the
// package imports no other gitfleet package.
//
// Typical usage:
//
//	hostKeys, err := sshserve.LoadOrCreateHostKeys(filepath.Join(home, "shared", "config"))
//	if err != nil { ... }
//	srv := &sshserve.Server{
//		Addr:     ":7999",
//		HostKeys: hostKeys,
//		Backend:  store, // a mesh.Repos
//		PublicKeyCallback: func(ctx context.Context, c sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
//			u, err := db.UserByKey(ctx, key) // no side effects: also called for keys merely offered
//			if err != nil { return sshserve.Principal{}, err }
//			return sshserve.Principal{Name: u.Name, ID: u.ID}, nil
//		},
//		Authorizer: func(ctx context.Context, c sshserve.ConnInfo, p sshserve.Principal, project, slug string, a sshserve.Access) error {
//			if db.Allowed(ctx, p.ID, project, slug, a) { return nil }
//			return sshserve.ErrDenied // the client sees "Repository not found"
//		},
//		Logger: logger,
//	}
//	go srv.ListenAndServe()
//	...
//	srv.Shutdown(ctx) // running clones finish; new connections are refused
//
// # Identity
//
// The principal a connection acts as comes only from the key that completed
// authentication: x/crypto calls PublicKeyCallback for every key a client offers,
// including keys it never signs with, so the principal is kept in the
// ssh.Permissions of that key and checked again once its signature has verified.
// Key policy (types, RSA of at least 2048 bits, no SHA-1 signatures) is enforced
// at login, before the callback is asked.
//
// # Refusals
//
// A denied and a missing repository give the same answer (NotFoundMessage, exit
// status 1), so that a client cannot probe for names. An Authorizer that wants to
// say more, such as a mirror refusing a push and naming the upstream clone URL,
// returns a *DeniedError whose Message the client sees on stderr.
package sshserve
