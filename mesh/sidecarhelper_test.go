package mesh_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/mesh"
)

// runSidecarHelper is the test binary as a sidecar child (MESH_TEST_HELPER=sidecar),
// as the example server's mesh-sidecar subcommand would run it.
func runSidecarHelper() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	port, _ := strconv.Atoi(os.Getenv("MESH_SIDECAR_PORT"))
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := mesh.RunSidecar(ctx, mesh.SidecarConfig{Root: os.Getenv("MESH_SIDECAR_ROOT"), Port: port, Logger: logger}); err != nil {
		fmt.Fprintln(os.Stderr, "sidecar:", err)
		return 1
	}
	return 0
}

// sidecarCommand returns a Command for a Supervisor that runs this test binary as a
// sidecar on root and port.
func sidecarCommand(t testing.TB, root string, port int) func() *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return func() *exec.Cmd {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"=sidecar", "MESH_SIDECAR_ROOT="+root,
			"MESH_SIDECAR_PORT="+strconv.Itoa(port), "GORACE=atexit_sleep_ms=0")
		cmd.Stderr = testWriter{t}
		return cmd
	}
}

// startSupervisor runs a supervised sidecar child on a fresh root; it is shut down
// at test end.
func startSupervisor(t testing.TB, port int) (*mesh.Supervisor, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "repositories")
	sup := &mesh.Supervisor{
		Command:        sidecarCommand(t, root, port),
		Logger:         testLogger(t),
		HealthInterval: 200 * time.Millisecond,
		MinBackoff:     50 * time.Millisecond,
		MaxBackoff:     time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := sup.Start(ctx); err != nil {
		sup.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sup.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return sup, root
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func openSidecarBackend(t *testing.T) (mesh.Repos, string) {
	if runtime.GOOS == "windows" {
		t.Skip("the sidecar Supervisor is not supported on windows")
	}
	sup, root := startSupervisor(t, freePort(t))
	return sup.Client(), root
}

// sidecarClient serves s through an in-process Server and returns a Client for it.
func sidecarClient(t testing.TB, s *mesh.Store) mesh.Repos {
	key, err := mesh.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	l, err := mesh.Listen(context.Background(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &mesh.Server{Store: s, Key: key, Logger: testLogger(t)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	c := mesh.NewClient(mesh.ClientConfig{Addr: l.Addr().String(), Key: key})
	t.Cleanup(func() {
		c.Close()
		srv.Close()
		<-served
	})
	return c
}

// runParentHelper is the test binary as a supervising parent (MESH_TEST_HELPER=
// parent): it starts a sidecar, prints the sidecar's pid and waits to be killed.
func runParentHelper() int {
	exe, err := os.Executable()
	if err != nil {
		return 2
	}
	sup := &mesh.Supervisor{Command: func() *exec.Cmd {
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), helperEnv+"=sidecar")
		cmd.Stderr = os.Stderr
		return cmd
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sup.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(sup.State().PID)
	time.Sleep(10 * time.Minute)
	return 0
}
