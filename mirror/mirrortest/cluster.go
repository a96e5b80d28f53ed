package mirrortest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/mesh"
	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/sshserve"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/ssh"
)

// User is a person on the test primary: a key and the projects they may read
// ("*" for all) and write.
type User struct {
	Name  string
	Key   *testutil.Key
	Read  []string
	Write []string
}

func (u *User) may(project string, write bool) bool {
	list := u.Read
	if write {
		list = u.Write
	}
	for _, p := range list {
		if p == "*" || p == project {
			return true
		}
	}
	return false
}

// users is the primary's user database.
type users struct {
	mu    sync.Mutex
	byKey map[string]*User // key fingerprint -> user
}

func (us *users) lookup(key ssh.PublicKey) *User {
	us.mu.Lock()
	defer us.mu.Unlock()
	return us.byKey[ssh.FingerprintSHA256(key)]
}

// allowed reports the user owning key and whether they may access project.
func (us *users) allowed(key ssh.PublicKey, project string, write bool) (string, bool) {
	us.mu.Lock()
	defer us.mu.Unlock()
	u := us.byKey[ssh.FingerprintSHA256(key)]
	if u == nil {
		return "", false
	}
	return u.Name, u.may(project, write)
}

// AddUser adds a user with a new Ed25519 key who may read the read projects
// and write the write projects.
func (p *Primary) AddUser(t testing.TB, name string, read, write []string) *User {
	t.Helper()
	u := &User{Name: name, Key: testutil.GenerateKey(t, testutil.Ed25519), Read: read, Write: write}
	p.users.mu.Lock()
	p.users.byKey[u.Key.Fingerprint()] = u
	p.users.mu.Unlock()
	return u
}

// startStorage opens the primary's store and SSH server; the Upstream is created
// afterwards with the SSH address, so this runs in two steps.
func (p *Primary) openStore(t testing.TB) {
	t.Helper()
	st, err := mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: p.Home.Repos})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	p.Store = st
	p.users = &users{byKey: map[string]*User{}}
	p.HostKey = testutil.GenerateKey(t, testutil.Ed25519)
	p.sshListener = testutil.Listen(t)
	p.SSHPort = p.sshListener.Addr().(*net.TCPAddr).Port
	p.KnownHosts = testutil.WriteKnownHosts(t, "127.0.0.1", p.SSHPort, p.HostKey.Public)
}

// readAccess answers the mirrors' /authenticate questions from the user database.
func (p *Primary) readAccess(ctx context.Context, key ssh.PublicKey, project, slug string) (string, bool, error) {
	name, ok := p.users.allowed(key, project, false)
	return name, ok, nil
}

// newSSHServer returns the primary's SSH server: users by key, with up's
// wrappers giving mirrors read access to their projects only.
func (p *Primary) newSSHServer(up *mirror.Upstream) *sshserve.Server {
	return &sshserve.Server{
		HostKeys: []ssh.Signer{p.HostKey.Signer},
		Backend:  p.Store,
		PublicKeyCallback: up.PublicKeyCallback(func(ctx context.Context, conn sshserve.ConnInfo, key ssh.PublicKey) (sshserve.Principal, error) {
			if u := p.users.lookup(key); u != nil {
				return sshserve.Principal{Name: u.Name, ID: "user:" + u.Name}, nil
			}
			return sshserve.Principal{}, errors.New("unknown key")
		}),
		Authorizer: up.Authorizer(func(ctx context.Context, conn sshserve.ConnInfo, pr sshserve.Principal, project, slug string, access sshserve.Access) error {
			if _, ok := p.users.allowed(pr.Key, project, access == sshserve.AccessWrite); !ok {
				return sshserve.ErrNotFound
			}
			return nil
		}),
	}
}

// SSHURL returns the primary's clone URL of project/slug.
func (p *Primary) SSHURL(project, slug string) string {
	return cloneURL(p.SSHPort, project, slug)
}

// cloneURL returns the clone URL of project/slug on a loopback SSH server.
func cloneURL(port int, project, slug string) string {
	return gitfleet.CloneURL(gitfleet.SSHBaseURL("127.0.0.1", port), gitfleet.RepoName{Project: project, Slug: slug})
}

// Node is a running mirror node: its home, database and key, its own store, the
// Mirror syncing into it, and an SSH server serving it.
type Node struct {
	Home       testutil.Home
	DB         *bolt.DB
	State      mirror.MirrorState // NewBoltState(DB)
	Key        *mirror.Key
	Store      *mesh.Store
	Mirror     *mirror.Mirror
	SSH        *sshserve.Server
	SSHPort    int
	HostKey    *testutil.Key
	KnownHosts string
	stop       func()
}

// NodeOptions configures StartNode.
type NodeOptions struct {
	Home      *testutil.Home // nil: a new home; pass a stopped node's home to restart it
	Name      string
	BaseURL   string // reuse the first start's base URL when restarting
	Configure func(*mirror.Config)
}

// StartNode starts a mirror node against the primary and runs its Mirror; it is
// stopped at test end or by Stop.
func (p *Primary) StartNode(t testing.TB, opts NodeOptions) *Node {
	t.Helper()
	n := &Node{}
	if opts.Home != nil {
		n.Home = *opts.Home
	} else {
		n.Home = testutil.NewHome(t)
	}
	var err error
	n.DB, err = bolt.Open(n.Home.DB, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.State = mirror.NewBoltState(n.DB)
	n.Key = MirrorKey(t, n.Home)
	n.Store, err = mesh.OpenStore(context.Background(), mesh.StoreConfig{Root: n.Home.Repos})
	if err != nil {
		n.DB.Close()
		t.Fatal(err)
	}
	home := n.Home
	n.Mirror = p.NewMirror(t, MirrorOptions{Home: &home, Name: opts.Name, BaseURL: opts.BaseURL, Repos: n.Store,
		Configure: func(c *mirror.Config) {
			c.State, c.Key = n.State, n.Key
			if opts.Configure != nil {
				opts.Configure(c)
			}
		}})
	n.HostKey = testutil.GenerateKey(t, testutil.Ed25519)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.SSHPort = l.Addr().(*net.TCPAddr).Port
	n.KnownHosts = testutil.WriteKnownHosts(t, "127.0.0.1", n.SSHPort, n.HostKey.Public)
	n.SSH = &sshserve.Server{HostKeys: []ssh.Signer{n.HostKey.Signer}}
	n.Mirror.ConfigureServer(n.SSH)
	serveDone := make(chan struct{})
	go func() { defer close(serveDone); n.SSH.Serve(l) }()
	runDone := make(chan error, 1)
	go func() { runDone <- n.Mirror.Run(context.Background()) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			n.SSH.Close()
			<-serveDone
			n.Mirror.Close()
			if err := <-runDone; err != nil && !errors.Is(err, mirror.ErrMirrorClosed) {
				t.Errorf("mirror run: %v", err)
			}
			n.Store.Close()
			n.DB.Close()
		})
	}
	t.Cleanup(n.stop)
	return n
}

// Stop stops the node (its home stays, for a restart).
func (n *Node) Stop() { n.stop() }

// SSHURL returns the node's clone URL of project/slug.
func (n *Node) SSHURL(project, slug string) string {
	return cloneURL(n.SSHPort, project, slug)
}

// SetGrants replaces the projects u may read and write.
func (p *Primary) SetGrants(u *User, read, write []string) {
	p.users.mu.Lock()
	defer p.users.mu.Unlock()
	u.Read, u.Write = read, write
}

// Clock is a settable clock for mirrors and upstreams: the real time plus an
// offset.
type Clock struct {
	mu  sync.Mutex
	off time.Duration
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the clock forward by d (backward when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}
