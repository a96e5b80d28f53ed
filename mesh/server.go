package mesh

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// ErrServerClosed is returned by Server.Serve after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Server serves a Store to a Client over loopback HTTP/1.1: JSON management calls,
// an event stream, and git services on upgraded connections that carry raw bytes
// both ways (see wire.go). Every request must carry a token made with Key; any
// other request gets 401 before any work is done.
type Server struct {
	// Store is the store served. Required.
	Store *Store
	// Key is the token key shared with the Client. Required.
	Key []byte
	// Logger receives the server's log records; nil discards them.
	Logger *slog.Logger
	// RequestHook, when set, is called with the method and path of every request
	// the server receives, before its token is checked, in the request's
	// goroutine (keep it quick). It lets a caller count or trace sidecar traffic.
	RequestHook func(method, path string)

	mu       sync.Mutex
	log      *slog.Logger
	hs       *http.Server
	ctx      context.Context    // parent of every git service; cancelled by Close
	cancel   context.CancelFunc // cancels ctx
	streams  chan struct{}      // closed when shutting down: ends event streams
	sessions map[string]*gitSession
	nonces   nonceCache     // of accepted request tokens, against replay
	gits     sync.WaitGroup // running git services on hijacked connections
	closing  bool
}

func (s *Server) init() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hs != nil {
		return
	}
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.streams = make(chan struct{})
	s.sessions = map[string]*gitSession{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathHealth, s.health)
	mux.HandleFunc("POST "+pathCreate, s.repoCall(func(ctx context.Context, r repoRequest) (any, error) {
		return struct{}{}, s.Store.Create(ctx, r.Project, r.Slug)
	}))
	mux.HandleFunc("POST "+pathDelete, s.repoCall(func(ctx context.Context, r repoRequest) (any, error) {
		return struct{}{}, s.Store.Delete(ctx, r.Project, r.Slug)
	}))
	mux.HandleFunc("POST "+pathList, s.repoCall(func(ctx context.Context, r repoRequest) (any, error) {
		list, err := s.Store.List(ctx)
		if list == nil {
			list = []RepoInfo{}
		}
		return list, err
	}))
	mux.HandleFunc("POST "+pathExists, s.repoCall(func(ctx context.Context, r repoRequest) (any, error) {
		return s.Store.Exists(ctx, r.Project, r.Slug)
	}))
	mux.HandleFunc("POST "+pathRefs, s.repoCall(func(ctx context.Context, r repoRequest) (any, error) {
		return s.Store.Refs(ctx, r.Project, r.Slug)
	}))
	mux.HandleFunc("POST "+pathRefsHash, s.repoCall(func(ctx context.Context, r repoRequest) (any, error) {
		return s.Store.RefsHash(ctx, r.Project, r.Slug)
	}))
	mux.HandleFunc("POST "+pathPackCacheStats, s.repoCall(func(ctx context.Context, r repoRequest) (any, error) {
		return s.Store.PackCacheStats(), nil
	}))
	mux.HandleFunc("POST "+pathFetch, s.fetch)
	mux.HandleFunc("GET "+pathEvents, s.events)
	mux.HandleFunc("POST "+pathGit, s.git)
	mux.HandleFunc("GET "+pathGitResult, s.gitResult)
	s.hs = &http.Server{
		Handler:           s.authenticate(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Serve accepts connections on l until Shutdown or Close, when it returns
// ErrServerClosed (at once, after either). l is closed when Serve returns.
func (s *Server) Serve(l net.Listener) error {
	if s.Store == nil || len(s.Key) == 0 {
		l.Close()
		return errors.New("mesh: Server needs a Store and a Key")
	}
	s.init()
	return s.hs.Serve(l)
}

// Shutdown stops accepting connections, ends event streams, and waits for running
// management calls, fetches and git services to finish. When ctx ends first it
// closes everything (killing git) and returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.beginClosing()
	herr := s.hs.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.gits.Wait(); close(done) }()
	select {
	case <-done:
		if herr != nil {
			s.Close()
		}
		return herr
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close closes the listeners and every connection, kills running git services and
// waits for them. It is safe to call more than once.
func (s *Server) Close() error {
	s.init()
	s.beginClosing()
	s.cancel()
	err := s.hs.Close()
	s.gits.Wait()
	return err
}

func (s *Server) beginClosing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closing {
		s.closing = true
		close(s.streams)
	}
}

// authenticate refuses, with 401 and before any handler runs, a request without a
// valid token for its method and path.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.RequestHook != nil {
			s.RequestHook(r.Method, r.URL.Path)
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), authScheme)
		if !ok {
			writeError(w, fmt.Errorf("%w: no token", ErrUnauthorized))
			return
		}
		// The body is read first (the token covers its hash); sidecar request
		// bodies are small JSON documents.
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Message: "mesh: reading the request: " + err.Error()})
			return
		}
		if len(body) > maxRequestBody {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody{Message: "mesh: request body too large"})
			return
		}
		now := time.Now()
		nonce, made, err := checkToken(s.Key, token, r.Method, r.URL.Path, requestBinding(r.URL.RawQuery, body, r.Header), now)
		if err == nil && !s.nonces.use(nonce, made, now) {
			err = fmt.Errorf("%w: replayed", ErrUnauthorized)
		}
		if err != nil {
			s.log.Warn("mesh: refused sidecar request", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, healthResponse{PID: os.Getpid()})
}

// repoCall adapts a management call taking a repoRequest.
func (s *Server) repoCall(f func(context.Context, repoRequest) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req repoRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Message: "mesh: bad request: " + err.Error()})
			return
		}
		v, err := f(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (s *Server) fetch(w http.ResponseWriter, r *http.Request) {
	var req fetchRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Message: "mesh: bad request: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	send := func(l fetchLine) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(l)
		rc.Flush()
	}
	req.Options.Progress = func(p FetchProgress) { send(fetchLine{Progress: &p}) }
	res, err := s.Store.Fetch(r.Context(), req.Project, req.Slug, req.Options)
	if err != nil {
		_, body := encodeError(err)
		send(fetchLine{Error: &body})
		return
	}
	send(fetchLine{Result: &res})
}

// events streams the store's events as JSON lines until the client goes away, the
// store closes or the server shuts down. The status line is flushed only once the
// subscription is in place, so the client sees every later event.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	go func() {
		select {
		case <-s.streams:
			cancel()
		case <-ctx.Done():
		}
	}()
	ch, err := s.Store.Subscribe(ctx)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	enc := json.NewEncoder(w)
	for ev := range ch {
		if enc.Encode(ev) != nil || rc.Flush() != nil {
			cancel()
			for range ch {
			}
			return
		}
	}
}

func newSessionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
