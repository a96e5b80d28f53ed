package mesh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gitfleet/gitfleet"
	"github.com/gitfleet/gitfleet/mesh"
)

func ExampleStore() {
	root, err := os.MkdirTemp("", "mesh-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)
	ctx := context.Background()
	s, err := mesh.OpenStore(ctx, mesh.StoreConfig{Root: root})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	events, err := s.Subscribe(ctx)
	if err != nil {
		panic(err)
	}
	// Names are validated and normalised: project keys upper-case, slugs lower-case.
	if err := s.Create(ctx, "proj", "My-Repo"); err != nil {
		panic(err)
	}
	list, _ := s.List(ctx)
	fmt.Println(list)
	ev := <-events
	fmt.Println(ev.Type, ev.Project, ev.Slug)
	// An empty repository has no refs; its refs hash is SHA-256 of nothing.
	hash, _ := s.RefsHash(ctx, "PROJ", "my-repo")
	fmt.Println(hash)
	// Output:
	// [{PROJ my-repo}]
	// repo_created PROJ my-repo
	// e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
}

// ExampleStore_ServeGit shows the request a transport hands the store, parsed
// once where it entered, and the answer for a repository that does not exist:
// gitfleet.ErrNotFound, with nothing written.
func ExampleStore_ServeGit() {
	root, err := os.MkdirTemp("", "mesh-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)
	ctx := context.Background()
	s, err := mesh.OpenStore(ctx, mesh.StoreConfig{Root: root})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	repo, err := gitfleet.ParseRepoPath("/proj/missing.git")
	if err != nil {
		panic(err)
	}
	var stdout, stderr bytes.Buffer
	req := gitfleet.GitRequest{Service: gitfleet.UploadPack, Repo: repo, Protocol: 2}
	err = s.ServeGit(ctx, req, strings.NewReader(""), &stdout, &stderr)
	fmt.Println(errors.Is(err, gitfleet.ErrNotFound), stdout.Len()+stderr.Len())
	// Output:
	// true 0
}

// ExampleServer serves a Store over loopback and uses it through a Client, as a
// node does with its sidecar (normally a child process run by a Supervisor).
func ExampleServer() {
	root, err := os.MkdirTemp("", "mesh-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(root)
	ctx := context.Background()
	store, err := mesh.OpenStore(ctx, mesh.StoreConfig{Root: root})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	key, _ := mesh.NewKey()
	l, err := mesh.Listen(ctx, 0, nil) // 0: any free port; a node uses mesh.DefaultSidecarPort
	if err != nil {
		panic(err)
	}
	srv := &mesh.Server{Store: store, Key: key}
	go srv.Serve(l)
	defer srv.Close()

	client := mesh.NewClient(mesh.ClientConfig{Addr: l.Addr().String(), Key: key})
	defer client.Close()
	if err := client.Create(ctx, "PROJ", "repo"); err != nil {
		panic(err)
	}
	err = client.Create(ctx, "PROJ", "repo")
	fmt.Println(errors.Is(err, mesh.ErrExists))
	list, _ := client.List(ctx)
	fmt.Println(list)
	// Output:
	// true
	// [{PROJ repo}]
}
