package sshserve

import (
	"io"
	"time"
)

// pacer writes git's output to a session about as fast as the client consumes it.
//
// Why: OpenSSH's client reads all the data its channel window allows (2 MiB for a
// session) as fast as it arrives, and keeps what git on its side has not yet read in
// a buffer that it grows, packet by packet, by allocating a larger one and copying.
// Once the server sends faster than the client's git reads — during every clone, as
// index-pack is slower than the network — that buffer holds about a window, each
// 32 KiB packet costs a copy of it, and the ssh process becomes CPU-bound: about a
// second of CPU for a 15 MB pack (perf: most of it in memmove and page faults), so
// the clone takes several times what the data needs. Paced at the rate git
// consumes, the same transfer costs the client a few tens of milliseconds.
//
// How: x/crypto/ssh does not expose the remote window, so the pacer uses what a
// writer can see. A write that blocks for longer than pacerBlocked means the window
// is spent (or TCP is full): the client has a backlog. The pacer then halves its
// rate and pauses long enough for a window's worth of backlog to drain at the new
// rate. While writes complete at once and the rate is what holds them back, the
// rate grows: quickly until the first backlog, slowly after it. Time in which git
// produced nothing does not count as evidence that the client keeps up.
//
// The first chunk of every response goes at once, so short responses (reference
// advertisements, push reports) are never delayed.
type pacer struct {
	w     io.Writer
	now   func() time.Time    // time.Now unless a test sets it
	sleep func(time.Duration) // time.Sleep unless a test sets it

	rate    float64   // bytes per second; 0 before the first write
	next    time.Time // when the next chunk is due
	changed time.Time // when the rate last changed
	backlog bool      // a backlog has been seen: grow slowly
	limited bool      // the rate held a write back since the last change
}

const (
	pacerChunk   = 32 << 10 // one SSH channel packet (OpenSSH's maximum)
	pacerInitial = 16 << 20 // bytes per second at the start of a response
	pacerMin     = 64 << 10
	pacerMax     = 4 << 30
	// pacerWindow is the backlog a blocked write implies: OpenSSH's session window.
	pacerWindow = 2 << 20
	pacerSlack  = time.Millisecond // lateness or earliness never worth a sleep
	// pacerBurst is how much may go out ahead of the rate before a sleep:
	// sleeping every chunk cost the server about as much CPU as the rest of
	// a clone (the wake-ups), and a burst this small is far from filling the
	// client's window. The slack it gives is kept between pacerSlack and
	// pacerMaxSlack.
	pacerBurst    = 256 << 10
	pacerMaxSlack = 8 * time.Millisecond
	pacerBlocked  = 10 * time.Millisecond
	pacerPeriod   = 100 * time.Millisecond // between rate increases
	pacerFast     = 1.25                   // growth per period before the first backlog
	pacerSlow     = 1.05                   // growth per period after it
	pacerMinWait  = 20 * time.Millisecond  // bounds of the pause after a backlog
	pacerMaxWait  = 500 * time.Millisecond
)

func newPacer(w io.Writer) *pacer { return &pacer{w: w, now: time.Now, sleep: time.Sleep} }

func (p *pacer) Write(b []byte) (int, error) {
	total := 0
	for len(b) > 0 {
		k := min(len(b), pacerChunk)
		start := p.now()
		if p.rate == 0 {
			p.rate = pacerInitial
			p.next, p.changed = start, start
		}
		slack := min(max(time.Duration(pacerBurst/p.rate*float64(time.Second)), pacerSlack), pacerMaxSlack)
		if d := p.next.Sub(start); d > slack {
			p.sleep(d)
			start = p.now()
			p.limited = true
		}
		if early := start.Add(-slack); p.next.Before(early) {
			p.next = early // no credit for time in which there was nothing to send
		}
		p.next = p.next.Add(time.Duration(float64(k) / p.rate * float64(time.Second)))
		n, err := p.w.Write(b[:k])
		total += n
		if err != nil {
			return total, err
		}
		b = b[k:]
		end := p.now()
		switch {
		case end.Sub(start) > pacerBlocked:
			if p.backlog && end.Sub(p.changed) < pacerPeriod {
				break // the same backlog as last time
			}
			p.rate = max(pacerMin, p.rate/2)
			wait := time.Duration(pacerWindow / p.rate * float64(time.Second))
			p.next = end.Add(min(max(wait, pacerMinWait), pacerMaxWait))
			p.changed, p.backlog, p.limited = end, true, false
		case end.Sub(p.changed) >= pacerPeriod:
			if p.limited {
				growth := pacerFast
				if p.backlog {
					growth = pacerSlow
				}
				p.rate = min(pacerMax, p.rate*growth)
			}
			p.changed, p.limited = end, false
		}
	}
	return total, nil
}
