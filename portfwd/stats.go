package portfwd

import "time"

// Stats is a snapshot of a Forwarder's counters. Byte counts include
// connections still open. BytesIn counts client-to-server bytes, BytesOut
// server-to-client bytes, as HAProxy's bin and bout do.
type Stats struct {
	Frontends []FrontendStats `json:"frontends"`
	Backends  []BackendStats  `json:"backends"`
}

// FrontendStats are the counters of one frontend.
type FrontendStats struct {
	Name     string `json:"name"`
	Current  int64  `json:"current"`
	Total    int64  `json:"total"`
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
}

// BackendStats are the counters of one backend.
type BackendStats struct {
	Name    string `json:"name"`
	Current int64  `json:"current"`
	Total   int64  `json:"total"`
	// Queue counts the connections waiting for any server of the backend.
	Queue         int           `json:"queue"`
	BytesIn       int64         `json:"bytes_in"`
	BytesOut      int64         `json:"bytes_out"`
	ConnectErrors int64         `json:"connect_errors"`
	Servers       []ServerStats `json:"servers"`
}

// ServerStats are the counters and health of one server.
type ServerStats struct {
	Name string `json:"name"`
	Addr string `json:"addr"`
	// Up is false once Fall health checks in a row failed.
	Up bool `json:"up"`
	// Checked tells whether health checks run; unchecked servers are
	// always up.
	Checked bool `json:"checked"`
	// LastChange is when Up last changed (or the server was configured).
	LastChange time.Time `json:"last_change"`
	Current    int64     `json:"current"`
	// Queue counts the connections waiting for this server in particular:
	// with balance source a client's address assigns it to a server, and
	// when that server is at maxconn the connection waits for it.
	Queue         int   `json:"queue"`
	Total         int64 `json:"total"`
	BytesIn       int64 `json:"bytes_in"`
	BytesOut      int64 `json:"bytes_out"`
	ConnectErrors int64 `json:"connect_errors"`
	CheckFailures int64 `json:"check_failures"`
}

// Stats returns the current counters, frontends and backends in
// configuration order.
func (f *Forwarder) Stats() Stats {
	f.mu.Lock()
	cfg := f.cfg
	frontends, backends := f.frontends, f.backends
	live := make([]*pair, 0, len(f.pairs))
	for p := range f.pairs {
		live = append(live, p)
	}
	loops := f.loops
	f.mu.Unlock()

	// Bytes of open connections (see liveBytes).
	type moved struct{ in, out int64 }
	open := map[*serverState]moved{}
	openC := map[*counters]moved{}
	for _, p := range live {
		in, out := p.liveBytes()
		m := open[p.srv]
		open[p.srv] = moved{m.in + in, m.out + out}
		for _, c := range []*counters{p.fe, p.be} {
			m = openC[c]
			openC[c] = moved{m.in + in, m.out + out}
		}
	}
	for _, l := range loops {
		l.liveBytes(func(s *serverState, fe, be *counters, in, out int64) {
			m := open[s]
			open[s] = moved{m.in + in, m.out + out}
			for _, c := range []*counters{fe, be} {
				m = openC[c]
				openC[c] = moved{m.in + in, m.out + out}
			}
		})
	}

	var st Stats
	for _, fc := range cfg.Frontends {
		fe := frontends[fc.Name]
		if fe == nil {
			continue
		}
		m := openC[fe.counters]
		st.Frontends = append(st.Frontends, FrontendStats{
			Name: fc.Name, Current: fe.cur.Load(), Total: fe.total.Load(),
			BytesIn: fe.bytesIn.Load() + m.in, BytesOut: fe.bytesOut.Load() + m.out,
		})
	}
	for _, bc := range cfg.Backends {
		b := backends[bc.Name]
		if b == nil {
			continue
		}
		bs := BackendStats{Name: b.name, Current: b.cur.Load(), Total: b.total.Load(),
			ConnectErrors: b.connErrs.Load(), BytesIn: b.bytesIn.Load(), BytesOut: b.bytesOut.Load()}
		m := openC[b.counters]
		bs.BytesIn += m.in
		bs.BytesOut += m.out
		b.mu.Lock()
		bs.Queue = b.anyQueued
		for _, s := range b.servers {
			m := open[s]
			bs.Servers = append(bs.Servers, ServerStats{
				Name: s.cfg.Name, Addr: s.cfg.Addr, Up: s.up, Checked: s.cfg.Check,
				LastChange: s.lastChange, Current: int64(s.cur), Queue: s.queued, Total: s.total.Load(),
				BytesIn: s.bytesIn.Load() + m.in, BytesOut: s.bytesOut.Load() + m.out,
				ConnectErrors: s.connErrs.Load(), CheckFailures: s.checkFails.Load(),
			})
		}
		b.mu.Unlock()
		st.Backends = append(st.Backends, bs)
	}
	return st
}
