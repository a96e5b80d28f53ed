package mesh

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// Subscribe streams the sidecar's events. It fails at once when the sidecar cannot
// be reached. Afterwards the subscription survives sidecar restarts: it reconnects
// (with backoff, following SetAddr) and then delivers an EventGap, since events may
// have been missed meanwhile. The channel is closed when ctx ends or the client is
// closed.
func (c *Client) Subscribe(ctx context.Context) (<-chan Event, error) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	body, err := c.openEvents(ctx)
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	out := make(chan Event)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer stop()
		defer cancel()
		defer close(out)
		c.subscription(ctx, body, out)
	}()
	return out, nil
}

func (c *Client) openEvents(ctx context.Context) (io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, pathEvents, nil, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, unavailable(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, decodeResponse(resp, nil)
	}
	return resp.Body, nil
}

func (c *Client) subscription(ctx context.Context, body io.ReadCloser, out chan<- Event) {
	for {
		dec := json.NewDecoder(body)
		for {
			var ev Event
			if err := dec.Decode(&ev); err != nil {
				break
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				body.Close()
				return
			}
		}
		body.Close()
		c.log.Warn("mesh: event stream from the sidecar ended; reconnecting")
		for attempt := 1; ; attempt++ {
			if c.reconnect.Wait(ctx, attempt) != nil {
				return
			}
			var err error
			if body, err = c.openEvents(ctx); err == nil {
				break
			}
		}
		select {
		case out <- Event{Type: EventGap, Time: time.Now().UTC()}:
		case <-ctx.Done():
			body.Close()
			return
		}
	}
}
