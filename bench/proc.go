package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// procStat is what /proc/<pid>/stat says about one process.
type procStat struct {
	pid, ppid int
	// cpu is user + system time of the process itself and of its children that
	// it has waited for (utime + stime + cutime + cstime).
	cpu time.Duration
	rss int64 // resident set size in bytes
}

// parseStat parses the contents of /proc/<pid>/stat. The command name (field 2)
// is in parentheses and may itself contain spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 1 || end < open {
		return procStat{}, fmt.Errorf("bench: malformed stat line %q", b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return procStat{}, fmt.Errorf("bench: malformed pid in stat line: %w", err)
	}
	f := strings.Fields(string(b[end+1:]))
	// After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13)
	// cstime(14) ... rss(21, pages).
	if len(f) < 22 {
		return procStat{}, fmt.Errorf("bench: stat line has %d fields after the name", len(f))
	}
	num := func(i int) int64 {
		v, perr := strconv.ParseInt(f[i], 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("bench: stat field %d: %w", i, perr)
		}
		return v
	}
	s := procStat{pid: pid, ppid: int(num(1))}
	s.cpu = time.Duration(num(11)+num(12)+num(13)+num(14)) * clockTick
	s.rss = num(21) * int64(os.Getpagesize())
	return s, err
}

// readStat reads /proc/<pid>/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// tree returns the process root and all its living descendants.
func tree(root int) []procStat {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]procStat{}
	var self *procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil {
			continue // it exited meanwhile
		}
		if pid == root {
			self = &s
		}
		children[s.ppid] = append(children[s.ppid], s)
	}
	if self == nil {
		return nil
	}
	out := []procStat{*self}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].pid]...)
	}
	return out
}

// TreeCPU is the CPU time (user + system) spent so far by the process root,
// its living descendants, and the descendants it (or they) have waited for.
// Descendants that exited without being waited for are not counted; servers
// wait for their children.
func TreeCPU(root int) time.Duration {
	var total time.Duration
	for _, s := range tree(root) {
		total += s.cpu
	}
	return total
}

// TreeRSS is the summed resident memory of the process root and its living
// descendants.
func TreeRSS(root int) int64 {
	var total int64
	for _, s := range tree(root) {
		total += s.rss
	}
	return total
}

// ProcessRSS is the resident memory of one process (VmRSS), in bytes.
func ProcessRSS(pid int) (int64, error) {
	s, err := readStat(pid)
	return s.rss, err
}

// Probe measures a server process tree over an interval: CPU time used and the
// peak of the tree's summed resident memory, sampled every Interval.
type Probe struct {
	pid      int
	cpu0     time.Duration
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	peak     int64
	interval time.Duration
}

// StartProbe starts measuring the tree rooted at pid. A pid of 0 measures
// nothing (a peer without a server process).
func StartProbe(pid int, interval time.Duration) *Probe {
	p := &Probe{pid: pid, stop: make(chan struct{}), interval: interval}
	if pid == 0 {
		return p
	}
	p.cpu0 = TreeCPU(pid)
	p.peak = TreeRSS(pid)
	p.wg.Add(1)
	go p.sample()
	return p
}

func (p *Probe) sample() {
	defer p.wg.Done()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			rss := TreeRSS(p.pid)
			p.mu.Lock()
			p.peak = max(p.peak, rss)
			p.mu.Unlock()
		}
	}
}

// Stop ends the measurement and returns the CPU time used and the peak
// resident memory of the tree in bytes (both 0 for pid 0).
func (p *Probe) Stop() (cpu time.Duration, peak int64) {
	if p.pid == 0 {
		return 0, 0
	}
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	return TreeCPU(p.pid) - p.cpu0, max(p.peak, TreeRSS(p.pid))
}

// OpenFDs counts the open file descriptors of pid.
func OpenFDs(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries), err
}

// Descendants returns the ids of the living descendants of root.
func Descendants(root int) []int {
	var out []int
	for _, s := range tree(root) {
		if s.pid != root {
			out = append(out, s.pid)
		}
	}
	return out
}
