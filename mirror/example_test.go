package mirror_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/gitfleet/gitfleet/mirror"
	"github.com/gitfleet/gitfleet/sshserve"
)

// The text a mirror signs for a long poll of the change feed with an empty body.
func ExampleSigningString() {
	s := mirror.SigningString("GET", "/rest/mirroring/1.0/events?after=41&wait=30s", 1700000000,
		"8c4f1e0b9a7d6c5e4f3a2b1c0d9e8f7a", nil)
	for _, line := range strings.Split(string(s), "\n") {
		fmt.Println(line)
	}
	// Output:
	// GET
	// /rest/mirroring/1.0/events?after=41&wait=30s
	// 1700000000
	// 8c4f1e0b9a7d6c5e4f3a2b1c0d9e8f7a
	// e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
}

// A doctor run for a mirror whose properties name http:// URLs: the first check
// fails with the property to fix, and the checks that need the upstream are
// skipped with the reason.
func ExampleDiagnose() {
	r := mirror.Diagnose(context.Background(), mirror.Config{Setup: mirror.SetupConfig{
		DisplayName: "Sydney",
		BaseURL:     "http://mirror-syd.example.com",
		UpstreamURL: "http://git.example.com",
	}})
	r.WriteTable(os.Stdout)
	// Output:
	// #   CHECK                 STATUS   OBSERVED
	// 1   upstream-https        FAIL     plugin.mirroring.upstream.url is "http://git.example.com"
	//                                    -> set plugin.mirroring.upstream.url in bitbucket.properties to the upstream's https:// URL (mirrors never use http://)
	// 2   upstream-dns          SKIPPED  not run: check upstream-https did not pass
	// 3   upstream-https-port   SKIPPED  not run: check upstream-dns did not pass
	// 4   upstream-ssh-port     SKIPPED  not run: check upstream-dns did not pass
	// 5   upstream-certificate  SKIPPED  not run: check upstream-https-port did not pass
	// 6   clock                 SKIPPED  not run: check upstream-certificate did not pass
	// 7   registration          SKIPPED  not run: check upstream-certificate did not pass
	// 8   upstream-host-key     SKIPPED  not run: check upstream-ssh-port did not pass
	// 9   ssh-authentication    SKIPPED  not run: check upstream-ssh-port did not pass
	// 10  mirror-base-url       FAIL     setup.baseUrl is "http://mirror-syd.example.com"
	//                                    -> the mirror's base URL must be https://; it can only be set once, so remove the mirror's home to set it up again
	// some checks failed: act on the first failure first
}

// An Upstream's grant to mirrors wraps the primary's own authorization: a
// principal that is no accepted mirror is the primary's business. The state
// here is in memory; a node passes mirror.NewBoltState(db).
func ExampleUpstream_Authorizer() {
	up, err := mirror.NewUpstream(mirror.UpstreamConfig{State: mirror.NewMemoryState()})
	if err != nil {
		panic(err)
	}
	defer up.Close()
	users := func(ctx context.Context, c sshserve.ConnInfo, p sshserve.Principal, project, slug string, a sshserve.Access) error {
		fmt.Println("the primary decides for", p.Name)
		return nil
	}
	authorize := up.Authorizer(users)
	err = authorize(context.Background(), sshserve.ConnInfo{}, sshserve.Principal{Name: "alice"}, "PROJ", "app", sshserve.AccessRead)
	fmt.Println(err)
	// Output:
	// the primary decides for alice
	// <nil>
}
