package gogitbackend

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport/server"

	"github.com/gitfleet/gitfleet"
)

// receivePack serves a push: go-git's session advertises the refs, stores the
// pack and moves the refs; around it, each command's old id is checked against
// the ref under a per-repository lock, which go-git's session does not do.
func (b *Backend) receivePack(ctx context.Context, req gitfleet.GitRequest, in io.Reader, out io.Writer) error {
	st := b.storage(req.Repo)
	sess, err := server.NewServer(loader{st}).NewReceivePackSession(nil, nil)
	if err != nil {
		return err
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return fmt.Errorf("advertising refs: %w", err)
	}
	if err := advertise(st, ar, req.Protocol, out); err != nil {
		return err
	}
	first, ok, err := firstLine(in)
	if err != nil || !ok {
		return err
	}
	upd := packp.NewReferenceUpdateRequest()
	if err := upd.Decode(io.MultiReader(bytes.NewReader(first), in)); err != nil {
		return fmt.Errorf("reading commands: %w", err)
	}
	// A client sends no pack when it only deletes refs, and keeps its stream
	// open for the report: do not wait for one.
	onlyDeletes := true
	for _, c := range upd.Commands {
		if c.Action() != packp.Delete {
			onlyDeletes = false
		}
	}
	if onlyDeletes {
		upd.Packfile = nil
	}

	mu := b.lock(req.Repo)
	mu.Lock()
	defer mu.Unlock()
	var stale []*packp.CommandStatus
	cmds := upd.Commands[:0]
	for _, c := range upd.Commands {
		cur := plumbing.ZeroHash
		if ref, err := st.Reference(c.Name); err == nil {
			cur = ref.Hash()
		}
		if cur != c.Old {
			stale = append(stale, &packp.CommandStatus{ReferenceName: c.Name, Status: "stale info"})
			continue
		}
		cmds = append(cmds, c)
	}
	upd.Commands = cmds
	report, err := sess.ReceivePack(ctx, upd)
	if report == nil { // the client asked for no report: only the exit status tells
		if err == nil && len(stale) > 0 {
			err = fmt.Errorf("%s: stale info", stale[0].ReferenceName)
		}
		return err
	}
	report.CommandStatuses = append(report.CommandStatuses, stale...)
	if werr := report.Encode(out); werr != nil {
		return fmt.Errorf("sending report: %w", werr)
	}
	if report.UnpackStatus != "ok" {
		return fmt.Errorf("unpack: %s", report.UnpackStatus)
	}
	// A refused ref is in the report, which is how git's receive-pack tells it.
	return nil
}
