package mesh

import (
	"context"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/gitfleet/gitfleet/internal/gitexec"
)

// stdinGrace is how long runGit waits, after git has exited, for a read from stdin
// that cannot be interrupted (stdin has no SetReadDeadline) to return.
const stdinGrace = time.Second

// runGit starts cmd with its standard input and output connected to stdin and
// stdout through pipes of its own, and waits for it.
//
// Output goes first through watch, when it is not nil, until watch has seen the end of
// the ref advertisement; the rest is copied with io.Copy from the pipe, which the
// runtime splices straight into a TCP or unix socket, so pack data is never copied
// through user space when stdout is a connection. A failed write to stdout closes
// the pipe, so git stops on EPIPE.
//
// Once git has exited, a read from stdin still blocked is interrupted through
// SetReadDeadline when stdin has it, and otherwise given stdinGrace (or until ctx
// ends) to return; the copying goroutine then ends when the caller closes stdin.
func runGit(ctx context.Context, cmd *exec.Cmd, stdin io.Reader, stdout io.Writer, watch *advWriter) error {
	opr, opw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout = opw
	var ipr, ipw *os.File
	if stdin != nil {
		if ipr, ipw, err = os.Pipe(); err != nil {
			opr.Close()
			opw.Close()
			return err
		}
		cmd.Stdin = ipr
	}
	err = cmd.Start()
	opw.Close()
	if ipr != nil {
		ipr.Close()
	}
	if err != nil {
		opr.Close()
		if ipw != nil {
			ipw.Close()
		}
		return err
	}

	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		defer opr.Close()
		if watch != nil {
			buf := make([]byte, 32<<10)
			for !watch.done {
				n, err := opr.Read(buf)
				if n > 0 {
					if _, err := watch.Write(buf[:n]); err != nil {
						watch.close()
						return
					}
				}
				if err != nil {
					watch.finish()
					return
				}
			}
		}
		io.Copy(stdout, opr)
	}()
	inDone := make(chan struct{})
	if stdin != nil {
		go func() {
			defer close(inDone)
			io.Copy(ipw, stdin)
			ipw.Close()
		}()
	} else {
		close(inDone)
	}

	err = cmd.Wait()
	// Output: normally at EOF already; a grandchild holding the pipe gets WaitDelay.
	t := time.NewTimer(gitexec.WaitDelay)
	select {
	case <-outDone:
	case <-t.C:
		opr.Close()
		<-outDone
	}
	t.Stop()
	if ipw != nil {
		ipw.Close() // a copy still running fails on its next write
	}
	waitStdin(ctx, stdin, inDone)
	return err
}

// waitStdin waits for a goroutine copying from stdin to end, interrupting its read
// through SetReadDeadline when stdin has it; otherwise it gives the read stdinGrace
// (or until ctx ends), after which the goroutine ends when the caller closes stdin.
func waitStdin(ctx context.Context, stdin io.Reader, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	if d, ok := stdin.(interface{ SetReadDeadline(time.Time) error }); ok && d.SetReadDeadline(time.Now()) == nil {
		<-done
		d.SetReadDeadline(time.Time{})
		return
	}
	t := time.NewTimer(stdinGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}
