package sshserve_test

import (
	"errors"
	"fmt"
	"strings"

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

func ExampleParseRevocationList() {
	rl, err := sshserve.ParseRevocationList("revoked-keys", []byte("# lost laptops\nserial: 1001\nserial: 2000-2099\nid: bob-laptop\n"))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rl.Serials, rl.KeyIDs)
	_, err = sshserve.ParseRevocationList("revoked-keys", []byte("# typo\nserail: 7\n"))
	fmt.Println(errors.Is(err, sshserve.ErrKeyList), strings.SplitAfter(err.Error(), ":2:")[0])
	// Output:
	// [{1001 1001} {2000 2099}] [bob-laptop]
	// true sshserve: bad key list line: revoked-keys:2:
}
