package mesh

import (
	"io"
	"strconv"
	"strings"
)

// progressParser reads the stderr of `git fetch --progress` and reports "Receiving
// objects" progress. git redraws a progress line with '\r' and ends it with '\n';
// a line looks like
//
//	Receiving objects:  45% (18000/40000), 5.20 MiB | 10.00 MiB/s
//
// Byte counts are as precise as git prints them (two decimals of KiB, MiB or GiB).
type progressParser struct {
	report func(FetchProgress)
	line   []byte
	last   FetchProgress
	tail   []byte // the last bytes of stderr, for error messages
}

const progressTail = 4096

func (p *progressParser) Write(b []byte) (int, error) {
	p.tail = append(p.tail, b...)
	if len(p.tail) > 2*progressTail {
		p.tail = append(p.tail[:0], p.tail[len(p.tail)-progressTail:]...)
	}
	for _, c := range b {
		if c == '\r' || c == '\n' {
			p.flushLine()
			continue
		}
		if len(p.line) < 512 {
			p.line = append(p.line, c)
		}
	}
	return len(b), nil
}

func (p *progressParser) flushLine() {
	line := string(p.line)
	p.line = p.line[:0]
	fp, ok := parseProgressLine(line)
	if !ok {
		return
	}
	if fp.Bytes == 0 {
		fp.Bytes = p.last.Bytes
	}
	if fp != p.last {
		p.last = fp
		if p.report != nil {
			p.report(fp)
		}
	}
}

// stderrTail returns the last lines git printed, without progress redraws.
func (p *progressParser) stderrTail() string {
	t := p.tail
	if len(t) > progressTail {
		t = t[len(t)-progressTail:]
	}
	var keep []string
	for _, l := range strings.Split(string(t), "\n") {
		l = strings.TrimRight(l, "\r")
		if i := strings.LastIndexByte(l, '\r'); i >= 0 {
			l = l[i+1:]
		}
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "objects:") && !strings.Contains(l, "deltas:") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// parseProgressLine parses one "Receiving objects:" progress line.
func parseProgressLine(line string) (FetchProgress, bool) {
	const prefix = "Receiving objects:"
	i := strings.Index(line, prefix)
	if i < 0 {
		return FetchProgress{}, false
	}
	rest := line[i+len(prefix):]
	open := strings.IndexByte(rest, '(')
	close := strings.IndexByte(rest, ')')
	if open < 0 || close < open {
		return FetchProgress{}, false
	}
	done, total, ok := strings.Cut(rest[open+1:close], "/")
	if !ok {
		return FetchProgress{}, false
	}
	n, err1 := strconv.ParseInt(done, 10, 64)
	t, err2 := strconv.ParseInt(total, 10, 64)
	if err1 != nil || err2 != nil || n < 0 || t < 0 {
		return FetchProgress{}, false
	}
	fp := FetchProgress{Objects: n, TotalObjects: t}
	after := rest[close+1:]
	after = strings.TrimPrefix(after, ",")
	if j := strings.IndexByte(after, '|'); j >= 0 {
		after = after[:j]
	}
	fp.Bytes = parseSize(strings.TrimSpace(after))
	return fp, true
}

// parseSize parses git's human-readable sizes: "512 bytes", "1.50 KiB", "5.20 MiB",
// "1.02 GiB". It returns 0 for anything else.
func parseSize(s string) int64 {
	num, unit, ok := strings.Cut(s, " ")
	if !ok {
		return 0
	}
	var mult float64
	switch strings.TrimSuffix(strings.TrimSpace(unit), ",") {
	case "bytes", "byte":
		mult = 1
	case "KiB":
		mult = 1 << 10
	case "MiB":
		mult = 1 << 20
	case "GiB":
		mult = 1 << 30
	default:
		return 0
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || !(f >= 0 && f <= 1<<50) {
		return 0
	}
	return int64(f * mult)
}

var _ io.Writer = (*progressParser)(nil)
