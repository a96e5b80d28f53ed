package mesh_test

import (
	"context"
	"fmt"
	"os"

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

func ExampleParseRepoPath() {
	for _, path := range []string{"/PROJ/repo.git", "proj/Repo", "PROJ/../etc"} {
		project, slug, err := mesh.ParseRepoPath(path)
		fmt.Printf("%q %q %v\n", project, slug, err)
	}
	// Output:
	// "PROJ" "repo" <nil>
	// "PROJ" "repo" <nil>
	// "" "" mesh: invalid project key or repository slug: slug "../etc"
}
