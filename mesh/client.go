package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gitfleet/gitfleet"
)

// ErrUnavailable is returned by Client calls when the sidecar cannot be reached (it
// is down or restarting) or stops answering.
var ErrUnavailable = errors.New("mesh: storage sidecar unavailable")

// ClientConfig configures NewClient.
type ClientConfig struct {
	// Addr is the sidecar's host:port. The Supervisor keeps it current with SetAddr.
	Addr string
	// Key is the token key shared with the sidecar. Required.
	Key []byte
	// Logger receives the client's log records; nil discards them.
	Logger *slog.Logger
	// CallTimeout bounds each management call (not git streams, fetches or event
	// streams, which run as long as their context). Zero means 30 seconds.
	CallTimeout time.Duration
	// DialTimeout bounds connecting to the sidecar. Zero means 5 seconds.
	DialTimeout time.Duration
}

// Client is a Repos served by a sidecar Server. It is safe for concurrent use.
type Client struct {
	key         []byte
	log         *slog.Logger
	callTimeout time.Duration
	dialer      net.Dialer
	hc          *http.Client
	reconnect   gitfleet.Backoff // spaces a subscription's attempts to reach the sidecar again

	mu   sync.Mutex
	addr string

	ctx    context.Context // ends at Close; parent of subscriptions
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ Repos = (*Client)(nil)

// NewClient returns a client for the sidecar at cfg.Addr.
func NewClient(cfg ClientConfig) *Client {
	c := &Client{key: cfg.Key, log: cfg.Logger, callTimeout: cfg.CallTimeout, addr: cfg.Addr,
		reconnect: gitfleet.Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.callTimeout <= 0 {
		c.callTimeout = 30 * time.Second
	}
	c.dialer.Timeout = cfg.DialTimeout
	if c.dialer.Timeout <= 0 {
		c.dialer.Timeout = 5 * time.Second
	}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext:         c.dialer.DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// SetAddr points the client at a sidecar's new address; calls made afterwards use it.
func (c *Client) SetAddr(addr string) {
	c.mu.Lock()
	changed := c.addr != addr
	c.addr = addr
	c.mu.Unlock()
	if changed {
		c.hc.CloseIdleConnections()
	}
}

// Addr returns the sidecar address in use.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Close ends the client's subscriptions, waits for them and closes idle connections.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	c.hc.CloseIdleConnections()
	return nil
}

// newRequest builds an authenticated request for path.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.URL.RawQuery = query.Encode()
	req.Header.Set("Authorization", authScheme+makeToken(c.key, method, path, requestBinding(req.URL.RawQuery, body, req.Header), time.Now()))
	return req, nil
}

// unavailable wraps a transport error in ErrUnavailable unless ctx ended.
func unavailable(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// call makes a management call: in is sent as JSON, the reply decoded into out.
func (c *Client) call(parent context.Context, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(parent, c.callTimeout)
	defer cancel()
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := c.newRequest(ctx, http.MethodPost, path, nil, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return unavailable(parent, err)
	}
	defer resp.Body.Close()
	return decodeResponse(resp, out)
}

func decodeResponse(resp *http.Response, out any) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(data, &eb) != nil || eb.Message == "" {
			eb.Message = fmt.Sprintf("mesh: sidecar answered %s", resp.Status)
		}
		return decodeError(eb)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// Health checks that the sidecar answers, and returns its process id.
func (c *Client) Health(parent context.Context) (pid int, err error) {
	ctx, cancel := context.WithTimeout(parent, c.callTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodGet, pathHealth, nil, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, unavailable(parent, err)
	}
	defer resp.Body.Close()
	var h healthResponse
	err = decodeResponse(resp, &h)
	return h.PID, err
}

// Create creates an empty repository in the sidecar's store.
func (c *Client) Create(ctx context.Context, project, slug string) error {
	return c.call(ctx, pathCreate, repoRequest{project, slug}, nil)
}

// Delete removes a repository.
func (c *Client) Delete(ctx context.Context, project, slug string) error {
	return c.call(ctx, pathDelete, repoRequest{project, slug}, nil)
}

// List returns every repository, sorted by project then slug.
func (c *Client) List(ctx context.Context) ([]RepoInfo, error) {
	var out []RepoInfo
	err := c.call(ctx, pathList, repoRequest{}, &out)
	return out, err
}

// Exists reports whether the repository exists.
func (c *Client) Exists(ctx context.Context, project, slug string) (bool, error) {
	var out bool
	err := c.call(ctx, pathExists, repoRequest{project, slug}, &out)
	return out, err
}

// Refs returns the repository's refs.
func (c *Client) Refs(ctx context.Context, project, slug string) (map[string]string, error) {
	var out map[string]string
	err := c.call(ctx, pathRefs, repoRequest{project, slug}, &out)
	return out, err
}

// RefsHash returns the repository's refs hash.
func (c *Client) RefsHash(ctx context.Context, project, slug string) (string, error) {
	var out string
	err := c.call(ctx, pathRefsHash, repoRequest{project, slug}, &out)
	return out, err
}

// Fetch runs Store.Fetch in the sidecar; progress lines from the sidecar are passed
// to opts.Progress.
func (c *Client) Fetch(ctx context.Context, project, slug string, opts FetchOptions) (FetchResult, error) {
	body, err := json.Marshal(fetchRequest{Project: project, Slug: slug, Options: opts})
	if err != nil {
		return FetchResult{}, err
	}
	req, err := c.newRequest(ctx, http.MethodPost, pathFetch, nil, body)
	if err != nil {
		return FetchResult{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return FetchResult{}, unavailable(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return FetchResult{}, decodeResponse(resp, nil)
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var l fetchLine
		if err := dec.Decode(&l); err != nil {
			return FetchResult{}, unavailable(ctx, fmt.Errorf("fetch response ended early: %w", err))
		}
		switch {
		case l.Progress != nil:
			if opts.Progress != nil {
				opts.Progress(*l.Progress)
			}
		case l.Error != nil:
			return FetchResult{}, decodeError(*l.Error)
		case l.Result != nil:
			return *l.Result, nil
		}
	}
}
