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

// lockEnv tells receive-pack's hooks that they run under a gate: two pipes
// inherited as descriptors 3 (answers from the store) and 4 (requests to the
// store) through which pre-receive asks for the repository's write lock and
// post-receive reports the push's end (see preReceiveScript, postReceiveScript).
const lockEnv = "GITFLEET_LOCK"

// hookScript is every repository's hooks/reference-transaction, through which a
// fetch (which holds the write lock throughout) reports its ref transactions: in
// the "committed" phase of each it appends the transaction's "<old> <new> <ref>"
// lines and a "." terminator to the spool file. receive-pack does not run it
// (its core.hooksPath is the store's own hooks directory). A git process not
// started by the store has no spool and reports nothing.
const hookScript = `#!/bin/sh
# gitfleet: report committed ref transactions to the store.
test -n "$` + eventsEnv + `" || exit 0
test "$1" = committed || exit 0
{ cat && echo .; } >>"$` + eventsEnv + `"
`

// refGate lets a receive-pack run without the repository's write lock, taking it
// only from its pre-receive hook (the pack has arrived and been checked) to its
// post-receive hook (every ref written), so that a slow or stalled pack upload
// holds nobody up. The push's event is published at "committed", before the lock
// is released, which keeps events in commit order across concurrent pushes. The
// gate counts "prepared" and "committed"/"aborted" as nesting phases, so a hook
// of another shape could take part too.
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
	pushRead      bool      // push holds the pre-receive hook's report
	cmd           *exec.Cmd // the receive-pack
	unfinished    bool      // git exited holding the lock, without "committed"
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
	g := &refGate{s: s, project: project, slug: slug, lock: lock, spool: spool, cmd: cmd,
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
		// git exited between the pre-receive hook's lock and the post-receive
		// hook's report: close, which knows how it exited, decides and unlocks.
		g.unfinished = depth > 0
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
// holds (normally nothing), under the lock. A receive-pack that exited holding the
// lock without reporting (see run) yields EventGap unless it exited with status 0.
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
	if g.unfinished {
		// Without a post-receive hook's report: either no update succeeded (git
		// runs that hook only when one did), or receive-pack died after some.
		if g.cmd.ProcessState == nil || !g.cmd.ProcessState.Success() {
			g.s.log.Warn("mesh: a push ended before reporting its ref updates; subscribers must resync", "project", g.project, "slug", g.slug)
			g.s.refs.drop(repoKey(g.project, g.slug))
			g.s.bus.publish(Event{Type: EventGap, Project: g.project, Slug: g.slug})
		}
		g.lock.Unlock()
		return
	}
	if fi, err := os.Stat(g.spool); err == nil && fi.Size() > g.offset {
		if g.lock.Lock(context.Background()) == nil {
			g.s.collectFrom(g.project, g.slug, g.spool, g.offset, nil, g.pushInfo())
			g.lock.Unlock()
		}
	}
}
