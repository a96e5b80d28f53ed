package gitfleet_test

import (
	"fmt"
	"path/filepath"

	"github.com/gitfleet/gitfleet"
)

func ExampleParseRepoPath() {
	repo, err := gitfleet.ParseRepoPath("/proj/My-Repo.git")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(repo, gitfleet.CloneURL("ssh://git@git.example.com:7999", repo))
	_, err = gitfleet.ParseRepoPath("proj/../etc")
	fmt.Println(err)
	// Output:
	// PROJ/my-repo ssh://git@git.example.com:7999/proj/my-repo.git
	// gitfleet: invalid project key or repository slug: repository path "proj/../etc" is not PROJECT/slug
}

func ExampleHome() {
	home := gitfleet.Home("/var/gitfleet")
	fmt.Println(filepath.ToSlash(home.PropertiesFile()))
	fmt.Println(filepath.ToSlash(home.RepoDir(gitfleet.RepoName{Project: "PROJ", Slug: "repo"})))
	// Output:
	// /var/gitfleet/shared/bitbucket.properties
	// /var/gitfleet/shared/data/repositories/PROJ/repo.git
}
