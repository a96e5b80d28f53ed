package gogitbackend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport/server"

	"github.com/gitfleet/gitfleet"
)

// uploadPack serves a clone, fetch or ls-remote: go-git's session advertises
// the refs and encodes the pack; the negotiation between them is git's without
// multi_ack, since go-git's session takes the haves only all at once.
func (b *Backend) uploadPack(ctx context.Context, req gitfleet.GitRequest, in io.Reader, out io.Writer) error {
	st := b.storage(req.Repo)
	sess, err := server.NewServer(loader{st}).NewUploadPackSession(nil, nil)
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
	upr := packp.NewUploadPackRequest()
	if err := upr.UploadRequest.Decode(io.MultiReader(bytes.NewReader(first), in)); err != nil {
		return fmt.Errorf("reading wants: %w", err)
	}
	if len(upr.Shallows) > 0 || !upr.Depth.IsZero() {
		return errors.New("shallow fetches are not supported by the go-git test backend")
	}
	haves, err := negotiate(ctx, st, in, out)
	if err != nil {
		return err
	}
	upr.Haves = haves
	resp, err := sess.UploadPack(ctx, upr)
	if err != nil {
		return fmt.Errorf("making pack: %w", err)
	}
	defer resp.Close()
	// resp's Read gives the pack alone: the ACK or NAK went out during the
	// negotiation.
	if _, err := io.Copy(out, resp); err != nil {
		return fmt.Errorf("sending pack: %w", err)
	}
	return nil
}

// negotiate reads the client's haves up to "done" and answers as git's
// upload-pack does without multi_ack: "ACK <id>" for the first have the
// repository holds, then nothing more; before that, NAK for each flush and for
// "done". It returns the haves the repository holds.
func negotiate(ctx context.Context, st interface {
	HasEncodedObject(plumbing.Hash) error
}, in io.Reader, out io.Writer) ([]plumbing.Hash, error) {
	sc := pktline.NewScanner(in)
	enc := pktline.NewEncoder(out)
	var haves []plumbing.Hash
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !sc.Scan() {
			err := sc.Err()
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("reading haves: %w", err)
		}
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\n"))
		switch {
		case len(line) == 0, string(line) == "done":
			if len(haves) == 0 {
				if err := enc.EncodeString("NAK\n"); err != nil {
					return nil, err
				}
			}
			if string(line) == "done" {
				return haves, nil
			}
		case bytes.HasPrefix(line, []byte("have ")) && len(line) == len("have ")+40:
			id := plumbing.NewHash(string(line[len("have "):]))
			if st.HasEncodedObject(id) != nil {
				continue
			}
			haves = append(haves, id)
			if len(haves) == 1 {
				if err := enc.Encodef("ACK %s\n", id); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("unexpected line in negotiation: %q", printable(line))
		}
	}
}

// printable shortens a client's line for an error message.
func printable(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return string(bytes.ToValidUTF8(b, []byte("?")))
}
