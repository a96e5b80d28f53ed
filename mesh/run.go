package mesh

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"sync"
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

// maxOutQueue bounds the output an outQueue holds for a client that does not
// read; past it, git's writes wait.
const maxOutQueue = 64 << 20

// outQueue passes a receive-pack's output on to a client without ever making
// receive-pack wait for the client, up to maxOutQueue bytes. receive-pack holds
// the repository's write lock from its pre-receive hook to its post-receive hook
// and writes its report (a line per ref) in between: through a pipe to a client
// that stopped reading, a push of a few thousand refs would otherwise hold the
// lock for as long as the client stays silent. The report is no larger than the
// commands the client sent, which receive-pack holds in memory too.
type outQueue struct {
	w      io.Writer
	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]byte
	size   int
	err    error // the first failed write to w
	closed bool
	done   chan struct{} // closed when drain returns
}

func newOutQueue(w io.Writer) *outQueue {
	q := &outQueue{w: w, done: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	go q.drain()
	return q
}

// Write queues a copy of p. It fails once a write to the client has failed.
func (q *outQueue) Write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.err == nil && q.size > 0 && q.size+len(p) > maxOutQueue {
		q.cond.Wait()
	}
	if q.err != nil {
		return 0, q.err
	}
	q.queue = append(q.queue, bytes.Clone(p))
	q.size += len(p)
	q.cond.Broadcast()
	return len(p), nil
}

func (q *outQueue) drain() {
	defer close(q.done)
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.queue) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.queue) == 0 {
			return
		}
		b := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		_, err := q.w.Write(b)
		q.mu.Lock()
		q.size -= len(b)
		q.cond.Broadcast()
		if err != nil {
			q.err, q.queue, q.size = err, nil, 0
			return
		}
	}
}

// close waits until everything queued has reached the client, a write to it has
// failed, or ctx has ended, and returns the failure. After ctx ends, a write
// still blocked returns when the caller closes the client's connection.
func (q *outQueue) close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	select {
	case <-q.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}
