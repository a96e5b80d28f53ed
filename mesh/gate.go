package mesh

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// lockEnv tells the reference-transaction hook that it runs under a gate: two
// pipes inherited as descriptors 3 (answers from the store) and 4 (requests to the
// store) through which it asks for the repository's write lock before a
// transaction commits.
const lockEnv = "GITFLEET_LOCK"

// hookScript is every repository's hooks/reference-transaction. git runs it in
// three phases of each ref transaction, one after another for one git process:
//
//   - prepared (all ref locks taken, nothing written yet): under a gate it writes
//     "prepared" on descriptor 4 and waits for "ok" on descriptor 3; anything else,
//     end of file included (the store died), makes it fail, which aborts the
//     transaction;
//   - committed: it appends the transaction's "<old> <new> <ref>" lines and a "."
//     terminator to the spool file and tells the gate;
//   - aborted: it tells the gate.
//
// The pipes come from the store through receive-pack, so a hook can never wait for
// a store that is gone. A git process not started by the store has no spool and
// neither asks nor reports.
const hookScript = `#!/bin/sh
# gitfleet: take the store's lock around ref transactions and report them.
test -n "$` + eventsEnv + `" || exit 0
case "$1" in
prepared)
	test -n "$` + lockEnv + `" || exit 0
	echo prepared >&4 || exit 1
	read -r answer <&3 || exit 1
	test "$answer" = ok ;;
committed)
	{ cat && echo .; } >>"$` + eventsEnv + `" || exit 1
	test -z "$` + lockEnv + `" || echo committed >&4 ;;
aborted)
	test -z "$` + lockEnv + `" || echo aborted >&4 ;;
esac
`

// refGate lets a receive-pack run without the repository's write lock, taking it
// only from a transaction's prepared phase to its committed (or aborted) phase, so
// that a slow or stalled pack upload holds nobody up. The events of each
// transaction are published at commit, before the lock is released, which keeps
// them in commit order across concurrent pushes. Phases nest (git 2.39 runs the
// packed-refs transaction of a deletion inside the loose one), so the gate counts.
type refGate struct {
	s             *Store
	project, slug string
	lock          *rwLock
	spool         string
	grantR, reqW  *os.File // the child's ends, descriptors 3 and 4
	grantW, reqR  *os.File // the store's ends
	done          chan struct{}
	offset        int64 // spool bytes already published
	held          bool  // no pipes: the write lock is held from open to close
	push          *PushInfo
	pushRead      bool // push holds the pre-receive hook's report
}

// pushInfo returns what the push's pre-receive hook reported (see PushInfo),
// read once: the hook has finished before the first ref transaction begins.
func (g *refGate) pushInfo() *PushInfo {
	if !g.pushRead {
		g.pushRead = true
		var err error
		if g.push, err = readPushReport(g.spool); err != nil {
			g.s.log.Error("mesh: reading a push's options and certificate", "project", g.project, "slug", g.slug, "err", err)
		}
	}
	return g.push
}

// openGate makes a gate and attaches it to cmd (ExtraFiles 3 and 4, and lockEnv).
// Where a child cannot inherit pipes (Windows) the gate holds the write lock for
// the whole push instead, and publishes the spool at close.
func (s *Store) openGate(ctx context.Context, project, slug string, lock *rwLock, spool string, cmd *exec.Cmd) (*refGate, error) {
	if !inheritsPipes {
		if err := lock.Lock(ctx); err != nil {
			return nil, err
		}
		if present, _ := s.present(project, slug); !present {
			lock.Unlock() // deleted before the push started
			return nil, fmt.Errorf("%w: %s/%s", ErrNotFound, project, slug)
		}
		return &refGate{s: s, project: project, slug: slug, lock: lock, spool: spool, held: true}, nil
	}
	grantR, grantW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		grantR.Close()
		grantW.Close()
		return nil, err
	}
	g := &refGate{s: s, project: project, slug: slug, lock: lock, spool: spool,
		grantR: grantR, reqW: reqW, grantW: grantW, reqR: reqR, done: make(chan struct{})}
	cmd.ExtraFiles = []*os.File{grantR, reqW}
	cmd.Env = append(cmd.Env, lockEnv+"=1")
	go g.run(ctx)
	return g, nil
}

func (g *refGate) run(ctx context.Context) {
	defer close(g.done)
	depth := 0
	defer func() {
		if depth > 0 { // git died inside a transaction
			g.lock.Unlock()
		}
	}()
	br := bufio.NewReader(g.reqR)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return // every writer is gone: git has exited
		}
		switch strings.TrimSpace(line) {
		case "prepared":
			ok := true
			if depth == 0 {
				if g.lock.Lock(ctx) != nil {
					ok = false
				} else if present, _ := g.s.present(g.project, g.slug); !present {
					g.lock.Unlock() // deleted while the push ran
					ok = false
				}
			}
			if ok {
				depth++
				io.WriteString(g.grantW, "ok\n")
			} else {
				io.WriteString(g.grantW, "no\n")
			}
		case "committed", "aborted":
			if depth == 0 {
				continue
			}
			depth--
			if depth == 0 {
				g.offset = g.s.collectFrom(g.project, g.slug, g.spool, g.offset, nil, g.pushInfo())
				g.lock.Unlock()
			}
		}
	}
}

// close ends the gate once git has exited, and publishes whatever the spool still
// holds (normally nothing), under the lock.
func (g *refGate) close() {
	if g.held {
		g.s.collectFrom(g.project, g.slug, g.spool, g.offset, nil, g.pushInfo())
		g.lock.Unlock()
		return
	}
	g.grantR.Close()
	g.reqW.Close()
	<-g.done
	g.grantW.Close()
	g.reqR.Close()
	if fi, err := os.Stat(g.spool); err == nil && fi.Size() > g.offset {
		if g.lock.Lock(context.Background()) == nil {
			g.s.collectFrom(g.project, g.slug, g.spool, g.offset, nil, g.pushInfo())
			g.lock.Unlock()
		}
	}
}
