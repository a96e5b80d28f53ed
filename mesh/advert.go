package mesh

import (
	"bytes"
	"io"
)

// advScanner follows the pkt-line framing at the start of an upload-pack response to
// find where the ref advertisement ends: at the first flush-pkt for protocol v0/v1,
// and for v2 (first pkt-line "version 2") at the flush-pkt that ends the response to
// the client's first command (normally ls-refs), the capability advertisement
// having ended at the one before. Input that is not pkt-line framing ends the scan at
// once, so a broken stream never holds the lock.
type advScanner struct {
	hdr      [4]byte
	hdrN     int
	payload  int    // bytes left of the current pkt-line's payload
	first    []byte // the start of the first pkt-line's payload
	inFirst  bool
	seen     int // pkt-lines seen
	flushes  int
	need     int // flushes that end the advertisement; 0 until known
	finished bool
}

// feed consumes p and returns the number of its bytes that belong to the
// advertisement and whether the advertisement ended within them.
func (a *advScanner) feed(p []byte) (n int, ended bool) {
	if a.finished {
		return 0, true
	}
	for n < len(p) {
		if a.payload > 0 {
			k := min(a.payload, len(p)-n)
			if a.inFirst && len(a.first) < 16 {
				a.first = append(a.first, p[n:n+min(k, 16-len(a.first))]...)
			}
			a.payload -= k
			n += k
			if a.payload == 0 {
				a.endPkt()
			}
			continue
		}
		a.hdr[a.hdrN] = p[n]
		a.hdrN++
		n++
		if a.hdrN < 4 {
			continue
		}
		a.hdrN = 0
		size, ok := pktLen(a.hdr)
		switch {
		case !ok || (size > 2 && size < 4):
			a.finished = true
			return n, true
		case size == 0: // flush-pkt
			a.flushes++
			a.seen++
			if a.need == 0 {
				a.need = 1 // a v0 advertisement may start with flush only if empty
			}
			if a.flushes >= a.need {
				a.finished = true
				return n, true
			}
		case size <= 2: // delim-pkt, response-end-pkt
			a.seen++
		default:
			a.payload = size - 4
			a.inFirst = a.seen == 0
			a.seen++
			if a.payload == 0 {
				a.endPkt()
			}
		}
	}
	return n, false
}

// endPkt is called at the end of each data pkt-line.
func (a *advScanner) endPkt() {
	if a.inFirst {
		a.inFirst = false
		if bytes.HasPrefix(a.first, []byte("version 2")) {
			a.need = 2
		} else {
			a.need = 1
		}
	}
}

// pktLen decodes a pkt-line length header.
func pktLen(h [4]byte) (int, bool) {
	n := 0
	for _, c := range h {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | int(v)
	}
	return n, true
}

// advWriter passes an upload-pack response through to w and calls release once, right
// after the last byte of the ref advertisement has been written to w (or when the
// response ends without one; see close).
type advWriter struct {
	w       io.Writer
	scan    advScanner
	release func()
}

func (a *advWriter) Write(p []byte) (int, error) {
	if a.release == nil {
		return a.w.Write(p)
	}
	n, ended := a.scan.feed(p)
	if !ended {
		return a.w.Write(p)
	}
	m, err := a.w.Write(p[:n])
	a.close()
	if err != nil || n == len(p) {
		return m, err
	}
	k, err := a.w.Write(p[n:])
	return m + k, err
}

// close releases the lock if the advertisement never ended.
func (a *advWriter) close() {
	if a.release != nil {
		a.release()
		a.release = nil
	}
}
