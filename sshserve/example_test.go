package sshserve_test

import (
	"errors"
	"fmt"

	"github.com/gitfleet/gitfleet/sshserve"
)

func ExampleCloneURL() {
	fmt.Println(sshserve.CloneURL(sshserve.BaseURL("git.example.com", 7999), "PROJ", "repo"))
	fmt.Println(sshserve.CloneURL(sshserve.BaseURL("git.example.com", 22), "PROJ", "repo"))
	fmt.Println(sshserve.CloneURL("ssh://git@git.example.com:22/", "PROJ", "Repo"))
	fmt.Println(sshserve.CloneURL(sshserve.BaseURL("::1", 7999), "PROJ", "repo"))
	// Output:
	// ssh://git@git.example.com:7999/proj/repo.git
	// ssh://git@git.example.com/proj/repo.git
	// ssh://git@git.example.com/proj/repo.git
	// ssh://git@[::1]:7999/proj/repo.git
}

func ExampleParseCommand() {
	for _, line := range []string{
		"git-upload-pack '/PROJ/repo.git'",
		"git receive-pack 'proj/Repo'",
		"git-upload-pack '../../etc/passwd'",
		"sh -c reboot",
	} {
		c, err := sshserve.ParseCommand(line)
		switch {
		case errors.Is(err, sshserve.ErrBadRepoPath):
			fmt.Println("bad path")
		case errors.Is(err, sshserve.ErrUnknownCommand):
			fmt.Println("unknown command")
		default:
			fmt.Println(c.Service, c.Repo(), c.Access())
		}
	}
	// Output:
	// git-upload-pack PROJ/repo read
	// git-receive-pack PROJ/repo write
	// bad path
	// unknown command
}
