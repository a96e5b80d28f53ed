package mesh

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gitfleet/gitfleet"
)

// Phase is a Supervisor's lifecycle phase.
type Phase string

// The phases reported by Supervisor.State.
const (
	PhaseStarting   Phase = "starting"   // the first child is starting
	PhaseReady      Phase = "ready"      // a child serves at Addr
	PhaseRestarting Phase = "restarting" // the child exited or stopped answering; a new one is on its way
	PhaseStopped    Phase = "stopped"    // Shutdown or Close has run
)

// SupervisorState is a snapshot of a Supervisor.
type SupervisorState struct {
	Phase    Phase  `json:"phase"`
	Attempt  int    `json:"attempt,omitempty"` // consecutive failed starts while restarting
	PID      int    `json:"pid,omitempty"`     // the child's pid when ready
	Addr     string `json:"addr,omitempty"`    // the child's address when ready
	Restarts int    `json:"restarts"`          // children started after the first
	LastExit string `json:"lastExit,omitempty"`
}

// Supervisor runs the storage sidecar as a child process, restarts it when it exits
// or stops answering, and keeps its Client pointed at the current address. Its
// exported fields are its configuration: set them before Start and do not change
// them afterwards (they are copied at the first call of any method). Every field
// but Command has a usable zero value.
//
// Its lifecycle follows net/http's as far as a child process allows: Start is the
// counterpart of Serve (it returns once the first child is ready, and supervision
// goes on in the background, since there is no listener to hand over), Shutdown
// stops gracefully and Close at once; after either, Start returns ErrServerClosed.
type Supervisor struct {
	// Command returns a fresh command for each start of the sidecar; the child must
	// run RunSidecar. The Supervisor adds the key and ready pipes as ExtraFiles
	// (descriptors KeyFD and ReadyFD), makes the child a process-group leader and,
	// on Linux, sets Pdeathsig so the child dies with this process; on other Unix
	// systems the child watches the key pipe, whose end means this process is
	// gone (see the package documentation, "Operating systems"). Required.
	Command func() *exec.Cmd
	// Key is the token key handed to each child; nil means a random key.
	Key []byte
	// Logger receives the supervisor's log records; nil discards them.
	Logger *slog.Logger
	// ReadyTimeout bounds a start, from exec to the ready line; zero or negative
	// means 15 seconds.
	ReadyTimeout time.Duration
	// HealthInterval is the time between health checks; zero or negative means 1
	// second.
	HealthInterval time.Duration
	// HealthTimeout bounds one health check; zero or negative means 2 seconds.
	HealthTimeout time.Duration
	// HealthFailures is how many checks in a row may fail before the child is
	// killed and restarted; zero or negative means 3.
	HealthFailures int
	// MinBackoff and MaxBackoff bound the wait before a restart, which doubles
	// with each failed attempt (a gitfleet.Backoff, with its jitter); zero or
	// negative means 100 ms and 10 s.
	MinBackoff, MaxBackoff time.Duration

	initOnce       sync.Once
	command        func() *exec.Cmd
	key            []byte
	log            *slog.Logger
	client         *Client
	readyTimeout   time.Duration
	healthInterval time.Duration
	healthTimeout  time.Duration
	healthFailures int
	backoffPolicy  gitfleet.Backoff

	stop     chan struct{} // closed by Shutdown: stop restarting, SIGTERM the child
	kill     chan struct{} // closed when Shutdown's deadline passes: SIGKILL
	stopOnce sync.Once
	killOnce sync.Once
	ready    chan struct{} // closed at the first ready
	done     chan struct{} // closed when the run loop has ended
	wg       sync.WaitGroup

	mu       sync.Mutex
	started  bool
	shutdown bool
	state    SupervisorState
}

// init copies the configuration and makes the client, once.
func (s *Supervisor) init() {
	s.initOnce.Do(func() {
		orDefault := func(d, v time.Duration) time.Duration {
			if d <= 0 {
				return v
			}
			return d
		}
		s.command = s.Command
		s.readyTimeout = orDefault(s.ReadyTimeout, 15*time.Second)
		s.healthInterval = orDefault(s.HealthInterval, time.Second)
		s.healthTimeout = orDefault(s.HealthTimeout, 2*time.Second)
		s.healthFailures = s.HealthFailures
		if s.healthFailures <= 0 {
			s.healthFailures = 3
		}
		s.backoffPolicy = gitfleet.Backoff{
			Min: orDefault(s.MinBackoff, 100*time.Millisecond),
			Max: orDefault(s.MaxBackoff, 10*time.Second),
		}
		s.key = slices.Clone(s.Key)
		if s.key == nil {
			s.key, _ = NewKey() // crypto/rand.Read does not fail
		}
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		s.client = NewClient(ClientConfig{Key: s.key, Logger: s.log, CallTimeout: 30 * time.Second})
		s.stop = make(chan struct{})
		s.kill = make(chan struct{})
		s.ready = make(chan struct{})
		s.done = make(chan struct{})
		s.state = SupervisorState{Phase: PhaseStarting}
	})
}

// Client returns the client that follows the supervised sidecar. It is closed by
// Shutdown and Close.
func (s *Supervisor) Client() *Client {
	s.init()
	return s.client
}

// State returns a snapshot of the supervisor's state.
func (s *Supervisor) State() SupervisorState {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *Supervisor) update(f func(*SupervisorState)) {
	s.mu.Lock()
	f(&s.state)
	s.mu.Unlock()
}

// Start starts the sidecar and returns once it is ready. When ctx ends first it
// returns ctx.Err(), and the supervisor keeps trying in the background until
// Shutdown or Close. Start may be called once; after Shutdown or Close (also one
// that ends a Start still waiting) it returns ErrServerClosed.
func (s *Supervisor) Start(ctx context.Context) error {
	s.init()
	if s.command == nil {
		return errors.New("mesh: Supervisor.Command is required")
	}
	if err := supervisorSupported(); err != nil {
		return err
	}
	s.mu.Lock()
	switch {
	case s.shutdown:
		s.mu.Unlock()
		return ErrServerClosed
	case s.started:
		s.mu.Unlock()
		return errors.New("mesh: Supervisor already started")
	}
	s.started = true
	s.mu.Unlock()
	s.wg.Add(1)
	go s.run()
	select {
	case <-s.ready:
		return nil
	case <-s.done:
		return ErrServerClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops the sidecar: no more restarts, SIGTERM to the child, which lets its
// running git services finish; when ctx ends first the child is killed and
// Shutdown returns ctx.Err(). It waits for the child and closes the Client. It is
// safe to call more than once, and before Start.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.init()
	s.stopOnce.Do(func() { close(s.stop) })
	var err error
	s.mu.Lock()
	s.shutdown = true
	started := s.started
	s.mu.Unlock()
	if started {
		select {
		case <-s.done:
		case <-ctx.Done():
			err = ctx.Err()
			s.killOnce.Do(func() { close(s.kill) })
			<-s.done
		}
	}
	s.wg.Wait()
	s.client.Close()
	s.update(func(st *SupervisorState) { st.Phase, st.PID, st.Addr = PhaseStopped, 0, "" })
	return err
}

// Close kills the sidecar at once and waits for it. It is safe to call more than
// once.
func (s *Supervisor) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Shutdown(ctx)
	return nil
}

// child is one running sidecar process.
type child struct {
	cmd    *exec.Cmd
	pid    int
	addr   string
	exited chan struct{}
	err    error // valid once exited is closed
}

// run is the supervision loop.
func (s *Supervisor) run() {
	defer s.wg.Done()
	defer close(s.done)
	attempt, first := 0, true
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		c, err := s.startChild()
		if err != nil {
			attempt++
			s.log.Error("mesh: sidecar failed to start", "attempt", attempt, "err", err)
			s.update(func(st *SupervisorState) {
				st.LastExit = err.Error()
				if !first {
					st.Phase, st.Attempt = PhaseRestarting, attempt
				}
			})
			if !s.backoff(attempt) {
				return
			}
			continue
		}
		readyAt := time.Now()
		s.client.SetAddr(c.addr)
		s.update(func(st *SupervisorState) {
			st.Phase, st.Attempt, st.PID, st.Addr = PhaseReady, 0, c.pid, c.addr
		})
		if first {
			first = false
			close(s.ready)
		}
		s.log.Info("mesh: sidecar ready", "pid", c.pid, "addr", c.addr)
		reason, stopped := s.watch(c)
		if stopped {
			s.update(func(st *SupervisorState) { st.LastExit = reason })
			return
		}
		if time.Since(readyAt) > time.Minute {
			attempt = 0
		}
		attempt++
		s.log.Warn("mesh: sidecar went away; restarting", "pid", c.pid, "reason", reason, "attempt", attempt)
		s.update(func(st *SupervisorState) {
			st.Phase, st.Attempt, st.PID, st.Addr, st.LastExit = PhaseRestarting, attempt, 0, "", reason
			st.Restarts++
		})
		if !s.backoff(attempt) {
			return
		}
	}
}

// backoff waits before restart attempt n; it reports false when stopped meanwhile.
func (s *Supervisor) backoff(n int) bool {
	t := time.NewTimer(s.backoffPolicy.Delay(n))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop:
		return false
	}
}

// watch health-checks a ready child until it exits, stops answering (it is then
// killed) or the supervisor stops. It returns why the child is gone.
func (s *Supervisor) watch(c *child) (reason string, stopped bool) {
	tick := time.NewTicker(s.healthInterval)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-c.exited:
			return exitReason(c.err), false
		case <-s.stop:
			c.signal(syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-s.kill:
				c.signal(syscall.SIGKILL)
				<-c.exited
			}
			return "stopped: " + exitReason(c.err), true
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.healthTimeout)
			pid, err := s.client.Health(ctx)
			cancel()
			if err == nil && pid == c.pid {
				failures = 0
				continue
			}
			failures++
			s.log.Warn("mesh: sidecar health check failed", "pid", c.pid, "failures", failures, "err", err)
			if failures >= s.healthFailures {
				c.signal(syscall.SIGKILL)
				<-c.exited
				return fmt.Sprintf("unresponsive after %d health checks: killed", failures), false
			}
		}
	}
}

func exitReason(err error) string {
	if err == nil {
		return "exited with status 0"
	}
	return err.Error()
}

// startChild starts a sidecar and waits for its ready line.
func (s *Supervisor) startChild() (*child, error) {
	cmd := s.command()
	keyR, keyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		keyR.Close()
		keyW.Close()
		return nil, err
	}
	// Without Pdeathsig the key pipe stays open for the child's life: the child
	// reads it to its end, which comes when this process is gone (see
	// parentWatchEnv). It is closed once the child has exited.
	keepKey := !hasPdeathsig
	defer func() {
		if !keepKey {
			keyW.Close()
		}
	}()
	defer readyR.Close()
	cmd.ExtraFiles = []*os.File{keyR, readyW} // descriptors 3 and 4: KeyFD, ReadyFD
	setChildProcAttr(cmd)
	if keepKey {
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, parentWatchEnv+"=1")
	}

	// Pdeathsig fires when the thread that forked the child exits, not the process:
	// fork from a goroutine locked to its thread, and keep that goroutine (and so
	// the thread) in cmd.Wait for the child's whole life. It unlocks only once the
	// child is gone: a goroutine that ends locked makes the runtime destroy its
	// thread, and that thread may earlier have forked (as an ordinary thread, before
	// this goroutine locked it) git processes of the Store, which Pdeathsig would
	// then kill in the middle of their work.
	c := &child{cmd: cmd, exited: make(chan struct{})}
	startErr := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			runtime.UnlockOSThread()
			if keepKey {
				keyW.Close()
			}
			startErr <- err
			close(c.exited)
			return
		}
		startErr <- nil
		c.err = cmd.Wait()
		runtime.UnlockOSThread()
		if keepKey {
			keyW.Close()
		}
		close(c.exited)
	}()
	err = <-startErr
	keyR.Close()
	readyW.Close()
	if err != nil {
		return nil, fmt.Errorf("mesh: starting the sidecar: %w", err)
	}
	c.pid = cmd.Process.Pid
	fail := func(err error) (*child, error) {
		c.signal(syscall.SIGKILL)
		<-c.exited
		return nil, err
	}
	if _, err := fmt.Fprintf(keyW, "%s\n", hex.EncodeToString(s.key)); err != nil {
		return fail(fmt.Errorf("mesh: handing the sidecar its key: %w", err))
	}
	if !keepKey {
		keyW.Close()
	}
	readyR.SetReadDeadline(time.Now().Add(s.readyTimeout))
	line, err := bufio.NewReader(readyR).ReadString('\n')
	if err != nil {
		select {
		case <-c.exited:
			return nil, fmt.Errorf("mesh: the sidecar exited before it was ready: %s", exitReason(c.err))
		default:
		}
		return fail(fmt.Errorf("mesh: the sidecar did not report ready within %v: %w", s.readyTimeout, err))
	}
	addr := strings.TrimSpace(line)
	if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
		return fail(fmt.Errorf("%w: the sidecar reported %q", ErrNotLoopback, addr))
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fail(err)
	}
	c.addr = addr
	return c, nil
}
