package sshserve_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
	"github.com/gitfleet/gitfleet/sshserve/sshservetest"
)

func TestZZScratch(t *testing.T) {
	if os.Getenv("ZZ_SCRATCH") == "" {
		t.Skip()
	}
	srv := sshservetest.NewServer(t)
	srv.SeedFrom("PROJ", "big", testutil.CachedRepo(t, testutil.Preset40k))
	os.WriteFile("/tmp/zz_env.sh", []byte(fmt.Sprintf("export GIT_SSH_COMMAND='%s'\nexport URL='%s'\nexport PORT=%d\n", srv.User.GitSSHCommand, srv.URL("PROJ", "big"), srv.Port)), 0o644)
	time.Sleep(300 * time.Second)
}
