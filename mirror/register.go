package mirror

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gitfleet/gitfleet"
	"golang.org/x/crypto/ssh"
)

// ErrHostKeyChanged is reported when the upstream's SSH host keys differ from
// the ones pinned when the mirror was accepted. Sync stops until an operator
// acts.
var ErrHostKeyChanged = errors.New("mirror: the upstream's SSH host key changed")

// loadRegistration reads the stored registration.
func loadRegistration(ctx context.Context, state MirrorState) (Registration, error) {
	reg, err := state.Registration(ctx)
	if err != nil {
		return Registration{State: StateUnregistered}, fmt.Errorf("mirror: read registration: %w", err)
	}
	if reg.State == "" {
		reg.State = StateUnregistered
	}
	return reg, nil
}

// saveRegistration stores reg and makes it current.
func (m *Mirror) saveRegistration(reg Registration) error {
	if err := m.cfg.State.SetRegistration(context.Background(), reg); err != nil {
		return fmt.Errorf("mirror: store registration: %w", err)
	}
	m.mu.Lock()
	m.reg = reg
	m.mu.Unlock()
	return nil
}

// updateRegistration applies f to the registration and saves the result when
// f reports a change, with no other update in between; an error from f leaves
// it unchanged.
func (m *Mirror) updateRegistration(f func(reg *Registration) (changed bool, err error)) (Registration, error) {
	m.regMu.Lock()
	defer m.regMu.Unlock()
	reg := m.registration()
	changed, err := f(&reg)
	if err != nil || !changed {
		return m.registration(), err
	}
	return reg, m.saveRegistration(reg)
}

func (m *Mirror) registration() Registration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reg
}

// registrationLoop drives the registration until ctx ends.
func (m *Mirror) registrationLoop(ctx context.Context) error {
	minDelay := m.cfg.PollInterval
	if minDelay <= 0 {
		minDelay = 2 * time.Second
	}
	maxDelay := m.cfg.MaxPollInterval
	if maxDelay <= 0 {
		maxDelay = time.Minute
	}
	maxDelay = max(maxDelay, minDelay)
	// A failing upstream is retried from minDelay up to maxDelay.
	retry := gitfleet.Backoff{Min: minDelay, Max: maxDelay}
	failures := 0
	var delay time.Duration
	for {
		reg := m.registration()
		wasRegistered := reg.Registered
		pollStart := time.Now()
		var err error
		switch {
		case reg.State == StateRemoved || reg.State == StateRejected:
			m.stopSync()
			<-ctx.Done()
			return ctx.Err()
		case !reg.Registered:
			err = m.register(ctx)
		default:
			err = m.pollState(ctx)
		}
		polled := time.Since(pollStart)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.setError(err)
		reg = m.registration()
		if err == nil {
			failures = 0
		}
		switch {
		case err != nil:
			m.log.Warn("mirror registration", "err", err)
			failures++
			delay = retry.Delay(failures)
		case reg.State == StateAccepted:
			delay = maxDelay
		case reg.State == StatePending:
			// An administrator who approves a mirror expects it to start at once:
			// the poll waits at the upstream for the decision, so poll again at
			// once, but no more often than minDelay (an upstream that does not
			// wait answers at once).
			delay = max(minDelay-polled, 0)
		default:
			delay = minDelay
		}
		if err == nil && reg.State == StateAccepted && len(reg.KeyChanged) == 0 {
			m.startSync()
		} else if reg.State != StateAccepted || len(reg.KeyChanged) > 0 {
			m.stopSync()
		}
		if justRegistered := err == nil && !wasRegistered && reg.Registered; justRegistered {
			continue // poll the state right away
		}
		if err := m.sleep(ctx, delay); err != nil {
			return err
		}
	}
}

// register sends the registration request.
func (m *Mirror) register(ctx context.Context) error {
	req := RegisterRequest{ID: m.ident.ID, Name: m.ident.Setup.DisplayName, BaseURL: m.ident.Setup.BaseURL,
		PublicKey: authorizedLine(m.PublicKey()), JoinToken: m.cfg.JoinToken}
	var reply MirrorServer
	_, err := m.api.call(ctx, http.MethodPost, "/mirrorServers", req, &reply)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict && ae.Code == "removed" {
		m.log.Error("the upstream removed this mirror; remove the mirror's home to register it again")
		return m.saveRegistration(Registration{Registered: true, State: StateRemoved})
	}
	if err != nil {
		return fmt.Errorf("register with %s: %w", m.ident.Setup.UpstreamURL, err)
	}
	m.markContact()
	m.log.Info("mirror registration sent", "id", m.ident.ID, "state", reply.State)
	reg := m.registration()
	reg.Registered = true
	if reply.State != "" {
		reg.State = reply.State
	}
	return m.saveRegistration(reg)
}

func (m *Mirror) markContact() {
	m.mu.Lock()
	m.contact = m.now()
	m.mu.Unlock()
}

// pollState reads the signed state and records it, pinning host keys on the
// first acceptance.
func (m *Mirror) pollState(ctx context.Context) error {
	var st StateReply
	path := "/mirrorServers/" + m.ident.ID + "/state"
	timeout := time.Minute
	if known := m.registration().State; known == StatePending {
		// A long poll: the upstream answers as soon as an administrator decides.
		wait := m.cfg.EventWait
		if wait <= 0 {
			wait = 30 * time.Second
		}
		path += "?state=" + string(known) + "&wait=" + wait.String()
		timeout += wait
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := m.api.call(ctx, http.MethodGet, path, nil, &st)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		m.log.Error("the upstream removed this mirror; remove the mirror's home to register it again")
		reg := m.registration()
		reg.State = StateRemoved
		return m.saveRegistration(reg)
	}
	if err != nil {
		return fmt.Errorf("read state from %s: %w", m.ident.Setup.UpstreamURL, err)
	}
	m.markContact()
	var prev State
	reg, err := m.updateRegistration(func(reg *Registration) (bool, error) {
		prev = reg.State
		reg.State = st.State
		switch st.State {
		case StateAccepted:
			keys, err := normaliseHostKeys(st.SSHHostKeys)
			if err != nil {
				return false, fmt.Errorf("upstream state: %w", err)
			}
			if len(keys) == 0 {
				return false, errors.New("upstream state: accepted but no SSH host keys were sent")
			}
			reg.Mode, reg.Projects, reg.SSHBaseURL = st.MirroringMode, slices.Clone(st.Projects), st.SSHBaseURL
			switch {
			case len(reg.HostKeys) == 0:
				reg.HostKeys = keys
				m.log.Info("mirror accepted; upstream SSH host keys pinned", "mode", reg.Mode, "projects", reg.Projects, "keys", len(keys))
			case !slices.Equal(reg.HostKeys, keys):
				if !slices.Equal(reg.KeyChanged, keys) {
					m.log.Error("the upstream's SSH host key changed; sync stopped",
						"pinned", strings.Join(reg.HostKeys, ", "), "offered", strings.Join(keys, ", "))
				}
				reg.KeyChanged = keys
			default:
				reg.KeyChanged = nil
			}
		case StatePending, StateRejected:
			reg.Mode, reg.Projects = "", nil
		default:
			return false, fmt.Errorf("upstream state: unknown state %q", st.State)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if prev != reg.State {
		m.log.Info("mirror state changed", "from", prev, "to", reg.State)
	}
	if len(reg.KeyChanged) > 0 {
		return fmt.Errorf("%w: pinned %s, offered %s; if the change is expected, call Mirror.TrustHostKeys",
			ErrHostKeyChanged, fingerprints(reg.HostKeys), fingerprints(reg.KeyChanged))
	}
	return nil
}

// TrustHostKeys replaces the pinned upstream SSH host keys with the ones the
// upstream offered after a change (if it offered others), and restarts a sync
// that stopped on a host key failure. Call it only after
// confirming the change with the upstream's administrator.
func (m *Mirror) TrustHostKeys() error {
	if _, err := m.updateRegistration(func(reg *Registration) (bool, error) {
		if len(reg.KeyChanged) == 0 {
			return false, nil
		}
		reg.HostKeys, reg.KeyChanged = reg.KeyChanged, nil
		return true, nil
	}); err != nil {
		return err
	}
	// A sync halted on a host key failure starts afresh with the keys now pinned.
	m.stopSync()
	m.setError(nil)
	m.askPoll()
	return nil
}

// normaliseHostKeys parses authorized_keys lines and returns them sorted in
// canonical form.
func normaliseHostKeys(lines []string) ([]string, error) {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l))
		if err != nil {
			return nil, fmt.Errorf("bad SSH host key %q: %v", l, err)
		}
		out = append(out, authorizedLine(pub))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// fingerprints returns the SHA256 fingerprints of authorized_keys lines.
func fingerprints(lines []string) string {
	var fps []string
	for _, l := range lines {
		if pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(l)); err == nil {
			fps = append(fps, ssh.FingerprintSHA256(pub))
		}
	}
	return strings.Join(fps, ",")
}
