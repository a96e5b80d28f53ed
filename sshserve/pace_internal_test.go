package sshserve

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// fakeLink is a session channel on a fake clock: each write takes cost(n) of fake
// time (a blocked write takes long), sleeps advance the clock and are recorded.
type fakeLink struct {
	t      time.Time
	cost   func(written int) time.Duration
	buf    bytes.Buffer
	sleeps []time.Duration
	fail   error
}

func (l *fakeLink) Write(b []byte) (int, error) {
	if l.fail != nil {
		return 0, l.fail
	}
	if l.cost != nil {
		l.t = l.t.Add(l.cost(l.buf.Len()))
	}
	return l.buf.Write(b)
}

func (l *fakeLink) pacer() *pacer {
	l.t = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &pacer{w: l, now: func() time.Time { return l.t }, sleep: func(d time.Duration) {
		l.sleeps = append(l.sleeps, d)
		l.t = l.t.Add(d)
	}}
}

func (l *fakeLink) slept() time.Duration {
	var d time.Duration
	for _, s := range l.sleeps {
		d += s
	}
	return d
}

// A short response goes out at once, whole.
func TestPacerShortResponseNotDelayed(t *testing.T) {
	l := &fakeLink{}
	p := l.pacer()
	msg := bytes.Repeat([]byte("0032want 0123456789abcdef0123456789abcdef01234567\n"), 100)
	if n, err := p.Write(msg); n != len(msg) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if len(l.sleeps) != 0 {
		t.Fatalf("a %d-byte response slept %v", len(msg), l.sleeps)
	}
	if !bytes.Equal(l.buf.Bytes(), msg) {
		t.Fatal("the data changed on the way")
	}
}

// While the client keeps up, the pacer is the limit and its rate grows: 64 MiB goes
// out at well over the initial rate, in order and whole.
func TestPacerGrowsWhileClientKeepsUp(t *testing.T) {
	l := &fakeLink{}
	p := l.pacer()
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	start := l.t
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := p.Write(data[off : off+1<<20]); err != nil {
			t.Fatal(err)
		}
	}
	elapsed := l.t.Sub(start)
	atInitial := time.Duration(float64(len(data)) / pacerInitial * float64(time.Second))
	if elapsed > atInitial/2 {
		t.Fatalf("64 MiB took %v of paced time; at the initial rate it takes %v: the rate did not grow", elapsed, atInitial)
	}
	if p.rate <= pacerInitial || p.backlog {
		t.Fatalf("rate %.0f, backlog %v: want growth and no backlog", p.rate, p.backlog)
	}
	if !bytes.Equal(l.buf.Bytes(), data) {
		t.Fatal("the data changed on the way")
	}
}

// A write that blocks (the client's window is spent) halves the rate and makes the
// next write wait for the backlog to drain.
func TestPacerBacksOffWhenWritesBlock(t *testing.T) {
	l := &fakeLink{}
	p := l.pacer()
	block := 4 << 20
	l.cost = func(written int) time.Duration {
		if written == block {
			return 50 * time.Millisecond
		}
		return 0
	}
	data := make([]byte, 8<<20)
	if _, err := p.Write(data[:block]); err != nil {
		t.Fatal(err)
	}
	before := p.rate
	if _, err := p.Write(data[block : block+pacerChunk]); err != nil {
		t.Fatal(err)
	}
	if !p.backlog || p.rate != before/2 {
		t.Fatalf("after a blocked write: rate %.0f (was %.0f), backlog %v", p.rate, before, p.backlog)
	}
	l.sleeps = nil
	if _, err := p.Write(data[block+pacerChunk : block+2*pacerChunk]); err != nil {
		t.Fatal(err)
	}
	if want := min(max(time.Duration(pacerWindow/p.rate*float64(time.Second)), pacerMinWait), pacerMaxWait); l.slept() < want {
		t.Fatalf("the write after a backlog waited %v, want at least %v", l.slept(), want)
	}
	// Growth is slow from now on.
	rate := p.rate
	if _, err := p.Write(data[block+2*pacerChunk:]); err != nil {
		t.Fatal(err)
	}
	if p.rate > rate*pacerFast {
		t.Fatalf("rate grew from %.0f to %.0f after a backlog: want slow growth", rate, p.rate)
	}
}

// Time in which git sent nothing (the server counting objects) does not raise the
// rate: the first large write after a pause is paced from where it was.
func TestPacerIdleTimeIsNotEvidence(t *testing.T) {
	l := &fakeLink{}
	p := l.pacer()
	if _, err := p.Write([]byte("advertisement")); err != nil {
		t.Fatal(err)
	}
	l.t = l.t.Add(10 * time.Second)
	if _, err := p.Write(make([]byte, pacerChunk)); err != nil {
		t.Fatal(err)
	}
	if p.rate != pacerInitial {
		t.Fatalf("rate %.0f after idling, want the initial %d", p.rate, pacerInitial)
	}
	l.sleeps = nil
	if _, err := p.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if want := time.Duration(float64((1<<20)-2*pacerChunk) / pacerInitial * float64(time.Second)); l.slept() < want-2*pacerMaxSlack { // at most the burst's slack at each end
		t.Fatalf("1 MiB after an idle gap slept %v, want about %v (no burst credit for the gap)", l.slept(), want)
	}
}

// A failing channel ends the write with the count of what went.
func TestPacerWriteError(t *testing.T) {
	l := &fakeLink{}
	p := l.pacer()
	if _, err := p.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	l.fail = errors.New("channel closed")
	n, err := p.Write(make([]byte, 3*pacerChunk))
	if n != 0 || !errors.Is(err, l.fail) {
		t.Fatalf("Write = %d, %v; want 0, the channel's error", n, err)
	}
}
