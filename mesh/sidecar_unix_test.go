//go:build unix

package mesh_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
)

// TestSidecarWatchesParent starts a sidecar as a Supervisor does where there is
// no Pdeathsig (the key pipe kept open, parentWatchEnv set), checks that it
// serves, then closes the key pipe as the kernel does when the supervising
// process dies: the sidecar must shut down by itself, with status 0.
func TestSidecarWatchesParent(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	keyR, keyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer keyW.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer readyR.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=sidecar", "MESH_SIDECAR_ROOT="+filepath.Join(t.TempDir(), "r"),
		"MESH_SIDECAR_PORT="+strconv.Itoa(freePort(t)), "GORACE=atexit_sleep_ms=0", mesh.ParentWatchEnv+"=1")
	cmd.Stderr = testWriter{t}
	cmd.ExtraFiles = []*os.File{keyR, readyW} // mesh.KeyFD, mesh.ReadyFD
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	keyR.Close()
	readyW.Close()
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()
	key, err := mesh.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(keyW, "%x\n", key)
	readyR.SetReadDeadline(time.Now().Add(60 * time.Second))
	line, err := bufio.NewReader(readyR).ReadString('\n')
	if err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	c := mesh.NewClient(mesh.ClientConfig{Addr: strings.TrimSpace(line), Key: key, CallTimeout: 10 * time.Second})
	defer c.Close()
	if pid, err := c.Health(context.Background()); err != nil || pid != cmd.Process.Pid {
		t.Fatalf("Health = %d, %v; want pid %d", pid, err, cmd.Process.Pid)
	}
	// The sidecar keeps serving while the pipe stays open.
	select {
	case <-exited:
		t.Fatalf("the sidecar exited while its parent lived: %v", waitErr)
	case <-time.After(300 * time.Millisecond):
	}
	keyW.Close()
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("the sidecar ended with %v after its parent went, want a clean shutdown", waitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the sidecar outlived its parent's end of the key pipe")
	}
}
