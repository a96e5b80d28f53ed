package sshserve_test

import (
	"errors"
	"fmt"

	"github.com/gitfleet/gitfleet/sshserve"
)

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
			fmt.Println(c.Service, c.Repo, c.Access())
		}
	}
	// Output:
	// git-upload-pack PROJ/repo read
	// git-receive-pack PROJ/repo write
	// bad path
	// unknown command
}
