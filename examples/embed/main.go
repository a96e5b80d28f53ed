// Command embed is a Git server in about a hundred lines: a gitfleet primary node
// (package node) with the program's own users and permissions, kept in memory.
// The node brings repository storage, Git over SSH, the /status page and the
// mirroring API; the program brings who may read and write.
//
//	embed [-home DIR] -users FILE [-repo PROJ/slug]...
//
// Each line of FILE is "NAME read|write PUBLIC-KEY" (the key as in
// authorized_keys). Readers may clone every repository, writers may also push.
// Every -repo is created at start when missing. Ports and everything else come
// from <home>/shared/bitbucket.properties and the environment (SERVER_PORT,
// PLUGIN_SSH_PORT, ...), as for the full server in examples/server.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/node"
	"github.com/gitfleet/gitfleet/props"
	"github.com/gitfleet/gitfleet/sshserve"
	"golang.org/x/crypto/ssh"
)

// user is one line of the users file.
type user struct {
	name  string
	write bool
}

// users maps a key's SHA256 fingerprint to its user.
type users map[string]user

func (u users) principal(ctx context.Context, c sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
	if usr, ok := u[ssh.FingerprintSHA256(key)]; ok {
		return sshserve.Principal{Name: usr.name, Kind: sshserve.KindUser}, nil
	}
	return sshserve.Principal{}, errors.New("unknown key")
}

func (u users) authorize(ctx context.Context, c sshserve.ConnInfo, p sshserve.Principal, project, slug string, access sshserve.Access) error {
	if access == sshserve.AccessWrite && !u[ssh.FingerprintSHA256(p.Key)].write {
		return sshserve.ErrDenied
	}
	return nil // a missing repository is answered by the storage
}

func loadUsers(path string) (users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	u := users{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		name, rest, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		access, keyText, _ := strings.Cut(rest, " ")
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(keyText))
		if err == nil && access != "read" && access != "write" {
			err = errors.New(`want "read" or "write"`)
		}
		if err == nil {
			err = gitfleet.KeyPolicy{}.Check(key)
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, line, err)
		}
		u[ssh.FingerprintSHA256(key)] = user{name: name, write: access == "write"}
	}
	return u, sc.Err()
}

func main() {
	homeFlag := flag.String("home", "", "home directory (default $GITFLEET_HOME, else ./gitfleet-home)")
	usersFile := flag.String("users", "", `users file: lines of "NAME read|write PUBLIC-KEY"`)
	var repos []gitfleet.RepoName
	flag.Func("repo", "a repository to create at start (PROJ/slug; repeatable)", func(s string) error {
		r, err := gitfleet.ParseRepoPath(s)
		repos = append(repos, r)
		return err
	})
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*homeFlag, *usersFile, repos, log); err != nil {
		log.Error("embed", "err", err)
		os.Exit(1)
	}
}

func run(homeFlag, usersFile string, repos []gitfleet.RepoName, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	home := gitfleet.ResolveHome(homeFlag, os.LookupEnv)
	u, err := loadUsers(usersFile)
	if err != nil {
		return err
	}
	p, err := props.Load(ctx, home.Dir(), props.LoadOptions{Logger: log})
	if err != nil {
		return err
	}
	cfg, problems := props.Check(p)
	if errs := problems.Errors(); len(errs) > 0 {
		return errs
	}
	n := &node.Node{
		Home: home, Config: cfg, Logger: log,
		PublicKeyCallback: u.principal, Authorizer: u.authorize,
		Setup: func(ctx context.Context, store mesh.Repos) error {
			for _, r := range repos {
				if err := store.Create(ctx, r.Project, r.Slug); err != nil && !errors.Is(err, mesh.ErrExists) {
					return err
				}
			}
			return nil
		},
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n.Shutdown(sctx)
	}()
	if err := n.ListenAndServe(); !errors.Is(err, node.ErrServerClosed) {
		stop() // ends the goroutine above
		return err
	}
	return nil
}
