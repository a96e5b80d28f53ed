//go:build unix

package mesh

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitfleet/gitfleet/internal/testutil"
)

// TestPackHookStoreGone: the pack-objects hook, run by sh as git runs it, sends
// its request and, when the store's end of the answer pipe is gone, fails at
// once instead of waiting.
func TestPackHookStoreGone(t *testing.T) {
	testutil.Require(t, "sh")
	hook := filepath.Join(t.TempDir(), packHookName)
	if err := os.WriteFile(hook, []byte(packHookScript), 0o755); err != nil {
		t.Fatal(err)
	}
	grantR, grantW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer reqR.Close()
	grantW.Close() // the store is gone
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", hook, "git", "--shallow-file", "", "pack-objects", "--stdout")
	cmd.Env = append(os.Environ(), packEnv+"=1")
	cmd.ExtraFiles = []*os.File{grantR, reqW}
	cmd.Stdin = strings.NewReader("0123\n--not\n\n")
	err = cmd.Start()
	grantR.Close()
	reqW.Close()
	if err != nil {
		t.Fatal(err)
	}
	sent, _ := io.ReadAll(reqR)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 || ctx.Err() != nil {
		t.Fatalf("hook: %v (context %v), want a prompt failure", err, ctx.Err())
	}
	if want := "pack 5\ngit\n--shallow-file\n\npack-objects\n--stdout\n"; string(sent) != want {
		t.Fatalf("hook sent %q, want %q", sent, want)
	}
	if args, err := gitArgs(strings.Split(strings.TrimSuffix(string(sent), "\n"), "\n")[1:]); err != nil || len(args) != 4 {
		t.Fatalf("gitArgs: %q, %v", args, err)
	}
}
